"""`<model>_batch_inference`: one run per data interval, backfill-safe.

wait_for_features (deferrable, on the partition's manifest) -> score (the champion's verified artifact,
streamed in row batches; predictions/<model>/ds=D with the model version and run id in every row,
published atomically; rerunning gives the same bytes) -> shadow_score (``deploy.shadow``: the waiting
challenger, and with ``always`` the previous champion, scored the same way into shadow/<model>/v<version>/ds=D;
its live paired comparison refreshed with the labels that arrived; skipped when nothing shadows) ->
shadow_ready (the shadow Asset, which starts the deployment DAG again, once a challenger has the labelled
shadow days ``deploy.require_shadow_days`` asks for; skipped otherwise).
"""

from airflow.sdk import DAG, Asset

from sluice.airflow.defaults import dag_kwargs
from sluice.airflow.deployment_operators import BatchScoreOperator, ShadowReadyOperator, ShadowScoreOperator
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
        shadow = ShadowScoreOperator(task_id="shadow_score", model=cfg.name)
        ready = ShadowReadyOperator(
            task_id="shadow_ready",
            model=cfg.name,
            shadow_task=shadow.task_id,
            outlets=[Asset(f"sluice://shadow/{cfg.name}")],
        )
        wait >> score >> shadow >> ready
    globals()[dag.dag_id] = dag
