# syntax=docker/dockerfile:1
# The one image of the distributed stack: every Airflow service (api-server, scheduler,
# dag-processor, triggerer, celery workers, the one-shot init) and the MLflow server.
# requirements.txt is the project's fully pinned lock file and the constraint for every
# environment, so the image runs exactly the versions the tests run (mlflow, psycopg2,
# boto3, great-expectations, the amazon/celery/smtp providers, ...).
# DAGs, plugins and include/ are bind-mounted by docker-compose.yaml, not baked in.
FROM apache/airflow:3.3.2-python3.11

# The base image already runs as the unprivileged "airflow" user (uid 50000, gid 0);
# say so explicitly so nothing below can run as root by accident. pip installs into
# ~/.local because the base image sets PIP_USER=true.
USER airflow

COPY --chown=airflow:0 requirements.txt /tmp/sluice-requirements.txt
# No `pip check` afterwards: the base image carries providers the project does not use, whose own
# pins may disagree with the lock file without affecting anything Sluice imports.
RUN pip install --no-cache-dir -r /tmp/sluice-requirements.txt \
    && rm -f /tmp/sluice-requirements.txt
