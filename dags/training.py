"""`<model>_training`: continuous training with a gate that fails closed.

plan (config rule on new partitions; or forced; or a monitoring reason in the run conf) -> train (snapshot
with manifest, training-set GX suite, sklearn pipeline from config, one MLflow run with lineage tags)
-> evaluate (candidate and champion on the same test rows, slices, paired bootstrap CI) -> gate (typed
decision recorded in MLflow; FAIL mails "why not promoted" and fails red, champion untouched) -> approve
(PASS: nothing to approve; INCONCLUSIVE: a person approves or rejects in Browse > Required Actions, the owners
get a mail with the evidence; no answer within gate.approval.timeout_hours = reject, and reject skips
promotion) -> promote (pool of one slot: register the version, alias `challenger`, ledger, model Asset event).

Started by the feature-set Asset, by the monitoring DAG (conf: reason, report) or by hand with Params.
Every Param is optional (the trigger form works with its defaults); ``reason`` and ``report`` are run-conf
keys the monitoring DAG sets, not form fields.
"""

from airflow.sdk import DAG, Asset, Param

from sluice.airflow.defaults import dag_kwargs
from sluice.airflow.operators import (
    ApprovePromotionOperator,
    EvaluateModelOperator,
    GateOperator,
    PlanTrainingOperator,
    PromoteModelOperator,
    TrainModelOperator,
)
from sluice.config import load_model_configs

PROMOTION_POOL = "sluice_promotion"

for cfg in load_model_configs().values():
    params = {
        "model": cfg.name,
        "end_ds": Param(
            None, type=["null", "string"], format="date", description="last day of the window (empty: the newest)"
        ),
        "window_days": Param(
            cfg.training.window_days, type=["null", "integer"], minimum=1, description="days of features"
        ),
        "force": Param(False, type=["null", "boolean"], description="train even if the new-partition rule says no"),
        "note": Param(None, type=["null", "string"], description="optional: why you are training, kept on the run"),
    }
    kwargs = dag_kwargs(
        cfg,
        "training",
        __doc__,
        schedule=[Asset(f"sluice://features/{cfg.features.feature_set}")],
        catchup=False,
        end_date=None,  # the model config's end_date bounds data intervals; training runs on events
        # two: runs started together (a person and a drift retrain, two workers) really run together, and on
        # the same snapshot they meet at promote's barrier (rival wait + the one-slot pool): one alias move
        max_active_runs=2,
        params=params,
    )
    with DAG(**kwargs) as dag:
        plan = PlanTrainingOperator(task_id="plan", model=cfg.name)
        train = TrainModelOperator(task_id="train", model=cfg.name, plan_task=plan.task_id)
        evaluate = EvaluateModelOperator(task_id="evaluate", model=cfg.name, train_task=train.task_id)
        gate = GateOperator(task_id="gate", model=cfg.name, train_task=train.task_id, evaluate_task=evaluate.task_id)
        approve = ApprovePromotionOperator(
            task_id="approve",
            model=cfg.name,
            timeout_hours=cfg.gate.approval.timeout_hours,
            train_task=train.task_id,
            evaluate_task=evaluate.task_id,
            gate_task=gate.task_id,
        )
        promote = PromoteModelOperator(
            task_id="promote",
            model=cfg.name,
            pool=PROMOTION_POOL,
            outlets=[Asset(f"sluice://model/{cfg.name}")],
            train_task=train.task_id,
            evaluate_task=evaluate.task_id,
            gate_task=gate.task_id,
            approve_task=approve.task_id,
        )
        plan >> train >> evaluate >> gate >> approve >> promote
    globals()[dag.dag_id] = dag
