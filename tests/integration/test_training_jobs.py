"""Training jobs against a real MLflow server: reproducibility, and two runs promoting at the same time."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import mlflow.sklearn
import numpy as np
import pytest
from machine import shared_machine_config

from sluice.config import get_model_config
from sluice.datagen.writer import seed_feature_store
from sluice.lake import Lake, LocalStorage
from sluice.registry.mlflow_registry import CHALLENGER, Registry
from sluice.training import job
from sluice.training.model import predict_scores
from sluice.training.snapshot import build_snapshot, time_split

START, DAYS, END = dt.date(2025, 1, 1), 24, dt.date(2025, 1, 24)


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Lake:
    lake = Lake(LocalStorage(tmp_path_factory.mktemp("lake")))
    cfg = get_model_config("loans")
    seed_feature_store(cfg, lake, START, DAYS, rows_per_day=900)
    return lake


def fresh_config(**estimator):
    """The loans config under a fresh registered-model name (the registry is shared by the session)."""
    cfg = shared_machine_config(get_model_config("loans"))
    update = {"name": f"loans_{uuid.uuid4().hex[:8]}"}
    if estimator:
        est = cfg.training.estimator.model_copy(update=estimator)
        update["training"] = cfg.training.model_copy(update={"estimator": est})
    return cfg.model_copy(update=update)


def test_retraining_from_the_same_manifest_gives_identical_predictions(lake, mlflow_server) -> None:
    cfg, registry = fresh_config(), Registry(mlflow_server)
    runs = [job.train(cfg, lake, registry, end_ds=END, window_days=20, dag_id="t", run_id=f"r{i}") for i in (1, 2)]
    assert runs[0]["manifest_sha256"] == runs[1]["manifest_sha256"]
    assert runs[0]["run_id"] != runs[1]["run_id"]
    _, _, test = time_split(build_snapshot(cfg, lake, END, 20).frame, cfg)
    preds = [predict_scores(mlflow.sklearn.load_model(r["model_uri"]), test, cfg.task) for r in runs]
    assert np.array_equal(preds[0], preds[1])
    tags = registry.run(runs[0]["run_id"]).data.tags
    assert tags["data.manifest_sha256"] == runs[0]["manifest_sha256"] and tags["config.hash"] == cfg.config_hash


def judged(cfg, lake, registry, run_id: str):
    trained = job.train(cfg, lake, registry, end_ds=END, window_days=20, dag_id="t", run_id=run_id)
    evaluation = job.evaluate(cfg, lake, registry, trained)
    decision = job.decide(cfg, registry, trained, evaluation)
    return trained, evaluation, decision.to_dict()


def weaker_than(cfg):
    """The same model (name, data) with a smaller estimator: a candidate that scores lower."""
    params = {"max_iter": 8, "max_depth": 2, "random_state": 1}
    estimator = cfg.training.estimator.model_copy(update={"params": params})
    return cfg.model_copy(update={"training": cfg.training.model_copy(update={"estimator": estimator})})


def test_two_runs_finishing_together_promote_exactly_one_the_better(lake, mlflow_server) -> None:
    registry = Registry(mlflow_server)
    better = fresh_config()
    weaker = weaker_than(better)
    results: dict[str, dict] = {}
    judged_runs = {"better": judged(better, lake, registry, "b"), "weaker": judged(weaker, lake, registry, "w")}
    assert all(d["decision"] == "PASS" for _, _, d in judged_runs.values())
    assert judged_runs["better"][1]["candidate"]["roc_auc"] > judged_runs["weaker"][1]["candidate"]["roc_auc"]
    barrier = threading.Barrier(2)

    def promote(name: str, cfg) -> None:
        trained, evaluation, decision = judged_runs[name]
        barrier.wait()  # both reach the promotion step at the same moment
        try:
            results[name] = job.promote(cfg, registry, trained, evaluation, decision, run_type="manual")
        except Exception as exc:  # surfaced by the assertion below, not lost in the thread
            results[name] = {"promoted": False, "error": repr(exc)}

    threads = [threading.Thread(target=promote, args=a) for a in (("weaker", weaker), ("better", better))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert [n for n, r in results.items() if r["promoted"]] == ["better"], results
    assert len(registry.versions(better.name)) == 1, "exactly one version registered"
    assert registry.by_alias(better.name, CHALLENGER).run_id == judged_runs["better"][0]["run_id"]


def test_backfill_runs_never_move_an_alias(lake, mlflow_server) -> None:
    cfg, registry = fresh_config(), Registry(mlflow_server)
    trained, evaluation, decision = judged(cfg, lake, registry, "bf")
    out = job.promote(cfg, registry, trained, evaluation, decision, run_type="backfill")
    assert out == {"promoted": False, "why": "a backfill run never moves an alias"}
    assert registry.by_alias(cfg.name, CHALLENGER) is None


def test_a_failed_gate_cannot_be_promoted(lake, mlflow_server) -> None:
    cfg, registry = fresh_config(), Registry(mlflow_server)
    trained, evaluation, decision = judged(cfg, lake, registry, "f")
    with pytest.raises(job.TrainingError, match="gate decided FAIL"):
        job.promote(cfg, registry, trained, evaluation, {**decision, "decision": "FAIL"}, run_type="manual")


def test_evaluation_logs_the_classical_plots_on_the_run(lake, mlflow_server) -> None:
    cfg, registry = fresh_config(), Registry(mlflow_server)
    trained, _, _ = judged(cfg, lake, registry, "p")
    names = sorted(a.path for a in registry.client.list_artifacts(trained["run_id"], "plots"))
    assert names == [
        f"plots/{n}.png" for n in ("calibration_curve", "confusion_matrix", "precision_recall_curve", "roc_curve")
    ]


def test_an_inconclusive_gate_promotes_only_with_a_named_approval_and_both_answers_reach_the_ledger(
    lake, mlflow_server
) -> None:
    from sluice.registry import ledger

    cfg, registry = fresh_config(), Registry(mlflow_server)
    trained, evaluation, decision = judged(cfg, lake, registry, "i")
    unsure = {**decision, "decision": "INCONCLUSIVE"}
    with pytest.raises(job.TrainingError, match="gate decided INCONCLUSIVE and nobody approved it"):
        job.promote(cfg, registry, trained, evaluation, unsure, run_type="manual")
    no = {"approved": False, "outcome": "rejected", "by": "airflow:ops", "why": "<not now>", "responded_at": "t"}
    registry.client.create_registered_model(cfg.name)  # in real life a champion exists (else no INCONCLUSIVE)
    job.record_approval(cfg, registry, trained, no, dag_id="d", run_id="r1")
    assert registry.run(trained["run_id"]).data.tags["approval.by"] == "airflow:ops"

    yes = {**no, "approved": True, "outcome": "approved", "by": "airflow:alice", "why": "looks fine"}
    job.record_approval(cfg, registry, trained, yes, dag_id="d", run_id="r2")
    out = job.promote(
        cfg, registry, trained, evaluation, unsure, run_type="manual", approval=yes, dag_id="d", run_id="r2"
    )
    assert out["promoted"], out
    version = registry.client.get_model_version(cfg.name, out["version"])
    assert version.tags["gate.decision"] == "INCONCLUSIVE" and version.tags["approval.by"] == "airflow:alice"
    entries = ledger.history(registry, cfg.name)
    assert [(e["who"], e.get("decision")) for e in entries] == [
        ("airflow:ops", "rejected"),
        ("airflow:alice", "approved"),
    ], entries
    assert entries[0]["from"] == entries[0]["to"] and entries[0]["why"].endswith("rejected by airflow:ops: <not now>")
    assert entries[1]["to"] == out["version"] and entries[1]["run_id"] == "r2"


def test_one_promote_at_a_time_still_lets_the_better_win(lake, mlflow_server) -> None:
    """On Airflow the one-slot pool admits one promote at a time: here the weaker run promotes while the better
    one, judged (PASS), still waits for the slot and has no score tag yet. The weaker reads the better's test
    metric and stands aside; the better then promotes: one version, one challenger move."""
    from sluice.registry import ledger

    registry = Registry(mlflow_server)
    better = fresh_config()
    weaker = weaker_than(better)
    runs = {"better": judged(better, lake, registry, "b"), "weaker": judged(weaker, lake, registry, "w")}
    first = job.promote(weaker, registry, *runs["weaker"], run_type="manual")
    assert not first["promoted"] and "on the same snapshot scores" in first["why"], first
    second = job.promote(better, registry, *runs["better"], run_type="manual")
    assert second["promoted"], second
    assert len(registry.versions(better.name)) == 1, "exactly one version registered"
    moves = [e for e in ledger.history(registry, better.name) if e.get("alias") == CHALLENGER]
    assert [e.get("candidate_run") for e in moves] == [runs["better"][0]["run_id"]], moves
