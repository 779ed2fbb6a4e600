"""`<model>_features`: one run per data interval, backfill-safe.

wait_for_landing (deferrable) -> validate (GX suite; failure = quarantine + alert, nothing downstream)
-> publish_features (config transforms -> features/<feature_set>/ds=D, atomic) -> feature-set Asset event.

One DAG per model config in include/models/. Rerunning any task for the same interval rewrites the same
bytes: partitions are content-addressed and published by manifest.
"""

from airflow.sdk import DAG, Asset

from sluice.airflow.defaults import dag_kwargs
from sluice.airflow.operators import PublishFeaturesOperator, ValidateLandingOperator
from sluice.airflow.sensors import PartitionSensor
from sluice.config import load_model_configs

for cfg in load_model_configs().values():
    with DAG(**dag_kwargs(cfg, "features", __doc__)) as dag:
        wait = PartitionSensor(
            task_id="wait_for_landing",
            key=f"landing/{cfg.dataset.name}/ds={{{{ ds }}}}/_SUCCESS",
            poll_interval=30,
            timeout=cfg.dataset.wait_timeout_minutes * 60,
        )
        validate = ValidateLandingOperator(task_id="validate", model=cfg.name)
        publish = PublishFeaturesOperator(
            task_id="publish_features",
            model=cfg.name,
            outlets=[Asset(f"sluice://features/{cfg.features.feature_set}")],
        )
        wait >> validate >> publish
    globals()[dag.dag_id] = dag
