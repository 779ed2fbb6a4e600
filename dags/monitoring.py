"""`<model>_monitoring`: one run per data interval; the feedback loop of the platform.

drift (DriftSensor, deferrable: waits for predictions/<model>/ds=D, then compares features and scores with
the reference profile of the version that scored them; JSON + HTML report in the lake and MLflow)
-> retrain_on_drift (k of the last n intervals, cooldown around the retrains before and after the interval, once
per interval: triggers <model>_training with the reason and the report, and mails the owners; otherwise skipped
with the reason). Both retrain tasks take the one slot of the `sluice_retrain` pool: intervals judged at once
(a backfill, several workers) decide one after another, each seeing the records the others wrote.

wait_for_labels (deferrable: labels of ds=D arrive labels.delay_days later) -> performance (live metric vs
the version's test metric) -> retrain_on_decay (same guard).
"""

import datetime as dt

from airflow.sdk import DAG

from sluice.airflow.defaults import dag_kwargs
from sluice.airflow.monitoring_operators import DriftSensor, PerformanceOperator, RetrainOperator
from sluice.airflow.sensors import PartitionSensor
from sluice.config import load_model_configs

RETRAIN_POOL = "sluice_retrain"

for cfg in load_model_configs().values():
    label_days = cfg.labels.delay_days + cfg.monitoring.label_wait_days
    # each run waits up to label_days for its labels: room for that many runs plus today's
    with DAG(**dag_kwargs(cfg, "monitoring", __doc__, max_active_runs=label_days + 3)) as dag:
        drift = DriftSensor(
            task_id="drift",
            model=cfg.name,
            poll_interval=cfg.monitoring.poll_interval_s,
            timeout=cfg.dataset.wait_timeout_minutes * 60 * 2,
        )
        on_drift = RetrainOperator(
            task_id="retrain_on_drift", model=cfg.name, source="drift", signal_task=drift.task_id, pool=RETRAIN_POOL
        )
        labels = PartitionSensor(
            task_id="wait_for_labels",
            key=f"labels/{cfg.labels.dataset}/ds={{{{ macros.ds_add(ds, {cfg.labels.delay_days}) }}}}/_SUCCESS",
            poll_interval=600,
            timeout=int(dt.timedelta(days=label_days + 1).total_seconds()),
        )
        performance = PerformanceOperator(task_id="performance", model=cfg.name)
        on_decay = RetrainOperator(
            task_id="retrain_on_decay",
            model=cfg.name,
            source="performance",
            signal_task=performance.task_id,
            pool=RETRAIN_POOL,
        )
        drift >> on_drift
        labels >> performance >> on_decay
    globals()[dag.dag_id] = dag
