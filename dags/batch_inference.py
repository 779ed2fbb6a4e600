"""`<model>_batch_inference`: one run per data interval, backfill-safe.

wait_for_features (deferrable, on the partition's manifest) -> score (the champion's verified artifact,
streamed in row batches; predictions/<model>/ds=D with the model version and run id in every row,
published atomically; rerunning gives the same bytes).
"""

from airflow.sdk import DAG, Asset

from sluice.airflow.defaults import dag_kwargs
from sluice.airflow.deployment_operators import BatchScoreOperator
from sluice.airflow.sensors import PartitionSensor
from sluice.config import load_model_configs

for cfg in load_model_configs().values():
    with DAG(**dag_kwargs(cfg, "batch_inference", __doc__)) as dag:
        wait = PartitionSensor(
            task_id="wait_for_features",
            key=f"features/{cfg.features.feature_set}/ds={{{{ ds }}}}/_manifest.json",
            poll_interval=30,
            timeout=cfg.dataset.wait_timeout_minutes * 60,
        )
        score = BatchScoreOperator(task_id="score", model=cfg.name, outlets=[Asset(f"sluice://predictions/{cfg.name}")])
        wait >> score
    globals()[dag.dag_id] = dag
