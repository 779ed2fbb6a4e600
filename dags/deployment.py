"""`<model>_deployment`: continuous delivery of a model version, with a way back.

resolve (new challenger, a version from Params, or action=rollback: the previous champion)
-> infra_validate (the exact version in a fresh serving process: sha256, output schema, p95 latency,
memory; a failure mails why and is never deployed) -> deploy (config's target: local blue/green behind a
stable address, SageMaker UpdateEndpoint waited for in the triggerer, or batch) -> smoke_test (live
address; failure redeploys the previous champion and mails) -> set_champion (alias + ledger).

resolve also weighs the version's live shadow evidence (shadow/<model>/v<version>, paired with the champion's
predictions and the labels): with deploy.require_shadow_days: N the challenger waits (skipped) until N shadow
days are labelled, and is refused (mail with the evidence) when the comparison says it is worse live.

Started by the model Asset (a new challenger), by the shadow Asset (a waiting challenger's shadow evidence became
decisive), or by hand: Trigger DAG w/ config, `action` and `version`.
"""

from airflow.sdk import DAG, Asset, Param

from sluice.airflow.defaults import dag_kwargs
from sluice.airflow.deployment_operators import (
    DeployOperator,
    InfraValidateOperator,
    ResolveReleaseOperator,
    SetChampionOperator,
    SmokeTestOperator,
)
from sluice.config import load_model_configs

for cfg in load_model_configs().values():
    params = {
        "model": cfg.name,
        "action": Param(
            "deploy", enum=["deploy", "rollback"], description="deploy, or roll back to an earlier champion"
        ),
        "version": Param(
            None,
            type=["null", "string"],
            description="optional: deploy = this registered version (default: the challenger); "
            "rollback = this earlier champion (default: the previous one)",
        ),
    }
    kwargs = dag_kwargs(
        cfg,
        "deployment",
        __doc__,
        schedule=(Asset(f"sluice://model/{cfg.name}") | Asset(f"sluice://shadow/{cfg.name}")),
        catchup=False,
        end_date=None,
        max_active_runs=1,
        params=params,
    )
    with DAG(**kwargs) as dag:
        resolve = ResolveReleaseOperator(task_id="resolve", model=cfg.name)
        plan = {"resolve_task": resolve.task_id}
        validate = InfraValidateOperator(task_id="infra_validate", model=cfg.name, **plan)
        deploy = DeployOperator(task_id="deploy", model=cfg.name, **plan)
        smoke = SmokeTestOperator(task_id="smoke_test", model=cfg.name, **plan)
        champion = SetChampionOperator(
            task_id="set_champion",
            model=cfg.name,
            outlets=[Asset(f"sluice://champion/{cfg.name}")],
            infra_validate_task=validate.task_id,
            **plan,
        )
        resolve >> validate >> deploy >> smoke >> champion
    globals()[dag.dag_id] = dag
