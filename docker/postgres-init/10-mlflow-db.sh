#!/bin/sh
# Creates the MLflow role and database next to the Airflow metadata database.
# Run once by the postgres image's entrypoint, on an empty data directory only
# (files in /docker-entrypoint-initdb.d). The password comes from the environment
# (MLFLOW_DB_PASSWORD, set from .env by docker-compose.yaml); psql's :'var' quoting
# keeps it out of the SQL text and safe whatever characters it holds.
if [ -z "${MLFLOW_DB_PASSWORD:-}" ]; then
    echo "10-mlflow-db.sh: MLFLOW_DB_PASSWORD is not set" >&2
    exit 1
fi
psql -v ON_ERROR_STOP=1 --no-password \
    --username "${POSTGRES_USER}" --dbname "${POSTGRES_DB}" \
    --set mlflow_user="${MLFLOW_DB_USER:-mlflow}" \
    --set mlflow_db="${MLFLOW_DB_NAME:-mlflow}" \
    --set mlflow_password="${MLFLOW_DB_PASSWORD}" <<'SQL'
CREATE ROLE :"mlflow_user" LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE :"mlflow_db" OWNER :"mlflow_user";
REVOKE ALL ON DATABASE :"mlflow_db" FROM PUBLIC;
SQL
