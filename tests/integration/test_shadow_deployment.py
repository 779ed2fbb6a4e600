"""A challenger better offline but worse live in shadow is not deployed when shadow evidence is required, and the
mail, received by the real SMTP sink, says why; against a real MLflow server and a lake on disk.

The story: the champion is a small model, the challenger a larger one that beats it on the offline test set. The
challenger then waits with ``deploy.require_shadow_days: 3`` and is shadow-scored next to the champion every
day. The live outcomes follow what the champion learned (the world moved back towards its view), so once the
labels of three shadow days have landed, the paired bootstrap on those rows says the challenger is worse.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from machine import shared_machine_config

from sluice.alerts.mailsink import read_outbox
from sluice.config import get_model_config
from sluice.datagen.writer import seed_feature_store
from sluice.deployment import job, shadow
from sluice.deployment.targets import DeploymentError
from sluice.evaluation.metrics import compute_metrics
from sluice.lake import Lake, LocalStorage
from sluice.registry import ledger
from sluice.registry.artifact import fetch_release, load_model, release_of
from sluice.registry.mlflow_registry import CHALLENGER, CHAMPION, Registry
from sluice.serving.batch import score_partition
from sluice.training.model import feature_columns, fit, predict_scores
from sluice.training.snapshot import build_snapshot

pytestmark = pytest.mark.integration

START, TRAIN_DAYS, LIVE_DAYS, ROWS = dt.date(2025, 1, 1), 10, 4, 600


class NeverDeploy:
    """A target that fails the test if anything reaches it: a refused version must not get this far."""

    name = "batch"

    def deploy(self, release):
        raise AssertionError(f"v{release.version} reached the target")

    def current(self):
        return None


def parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


@pytest.fixture
def setup(tmp_path, monkeypatch, mlflow_server, register_model):
    monkeypatch.setenv("SLUICE_HOME", str(tmp_path / "home"))
    base = shared_machine_config(get_model_config("loans"))
    cfg = base.model_copy(
        update={
            "name": f"loans_{uuid.uuid4().hex[:8]}",
            "deploy": base.deploy.model_copy(update={"target": "batch", "require_shadow_days": 3}),
        }
    )
    lake = Lake(LocalStorage(tmp_path / "lake"))
    seed_feature_store(cfg, lake, START, TRAIN_DAYS + LIVE_DAYS, rows_per_day=ROWS)
    # labels of day D land 7 days later: the training window's first three days are labelled
    frame = build_snapshot(cfg, lake, START + dt.timedelta(days=TRAIN_DAYS - 1), TRAIN_DAYS).frame
    train, test = frame.iloc[: len(frame) * 2 // 3], frame.iloc[len(frame) * 2 // 3 :]
    small = cfg.model_copy(
        update={
            "training": cfg.training.model_copy(
                update={
                    "estimator": cfg.training.estimator.model_copy(
                        update={"params": {"max_iter": 3, "max_depth": 2, "random_state": 1}}
                    )
                }
            )
        }
    )
    champion_model, challenger_model = fit(small, train), fit(cfg, train)
    y = test[cfg.labels.column].to_numpy()
    offline = {
        name: compute_metrics(cfg.task, y, predict_scores(m, test, cfg.task), ["roc_auc"])["roc_auc"]
        for name, m in (("champion", champion_model), ("challenger", challenger_model))
    }
    registry = Registry(mlflow_server)
    example = frame[feature_columns(cfg)].head(3)
    v1, _ = register_model(cfg, champion_model, example)
    v2, _ = register_model(cfg, challenger_model, example, **{"gate.decision": "PASS"})
    job.set_champion(cfg, registry, release_of(registry, cfg.name, v1), why="first model", who="test")
    registry.set_alias(cfg.name, CHALLENGER, v2)
    return cfg, lake, registry, v1, v2, offline


def live_day(cfg, lake, registry, ds: dt.date, champion: str, challenger: str) -> None:
    """What the batch-inference DAG does for ``ds``: the champion's predictions, the challenger's shadow."""
    for version, zone in ((champion, "predictions"), (challenger, "shadow")):
        release = release_of(registry, cfg.name, version)
        model = load_model(fetch_release(release))
        if zone == "predictions":
            score_partition(cfg, lake, ds, model, model_version=version, run_id=release.run_id, workers=1)
        else:
            shadow.score_shadow(cfg, lake, ds, model, version=version, run_id=release.run_id, workers=1)


def land_live_labels(cfg, lake, ds: dt.date) -> None:
    """Outcomes of ``ds`` that follow the champion's ranking of the rows (what the world now rewards)."""
    preds = pd.read_parquet(io.BytesIO(lake.read_published("predictions", cfg.name, ds)[0]))
    s = preds["score"].to_numpy()
    z = (s - s.mean()) / s.std()
    rng = np.random.default_rng(int(ds.strftime("%Y%m%d")))
    y = (rng.random(len(s)) < 1 / (1 + np.exp(-(3 * z - 1)))).astype(int)
    labels = pd.DataFrame({cfg.labels.join_key: preds[cfg.dataset.id_column], cfg.labels.column: y})
    lake.put_landing("labels", cfg.labels.dataset, shadow.label_ds(cfg, ds), {"part-00000.parquet": parquet(labels)})


def test_better_offline_worse_live_is_not_deployed_and_the_mail_says_why(setup, smtp_sink) -> None:
    cfg, lake, registry, v1, v2, offline = setup
    print(f"offline roc_auc: champion v{v1} {offline['champion']:.4f}, challenger v{v2} {offline['challenger']:.4f}")
    assert offline["challenger"] > offline["champion"], "the challenger must be the better model offline"

    live = [START + dt.timedelta(days=TRAIN_DAYS + i) for i in range(LIVE_DAYS)]
    for ds in live:
        live_day(cfg, lake, registry, ds, v1, v2)

    # two labelled shadow days of the three required: the challenger waits, nothing moves
    for ds in live[:2]:
        land_live_labels(cfg, lake, ds)
    plan = job.run_deployment(cfg, lake, registry, NeverDeploy(), who="test")
    assert plan["deploy"] is False and "2 of the 3 labelled shadow day(s)" in plan["why"], plan["why"]

    # the third day's labels: the comparison is decisive, and says worse
    land_live_labels(cfg, lake, live[2])
    with pytest.raises(job.ShadowRefused) as refused:
        job.run_deployment(cfg, lake, registry, NeverDeploy(), who="test")
    evidence = refused.value.evidence
    print(*shadow.summary_lines(evidence), sep="\n")
    assert isinstance(refused.value, DeploymentError)
    assert evidence["verdict"] == shadow.WORSE and evidence["labelled_days"] == 3
    assert evidence["bootstrap"]["upper"] < 0 and evidence["shadow_metric"] < evidence["champion_metric"]
    assert [d["status"] for d in evidence["days"]] == ["labelled"] * 3 + ["waiting_for_labels"]

    # nothing moved, and the refusal is on record
    assert registry.by_alias(cfg.name, CHAMPION).version == v1
    assert registry.by_alias(cfg.name, CHALLENGER).version == v2
    assert registry.client.get_model_version(cfg.name, v2).tags[shadow.VERDICT_TAG] == shadow.WORSE
    last = ledger.history(registry, cfg.name)[-1]
    assert last["decision"] == "refused by shadow" and last["from"] == last["to"] == v2
    stored = json.loads(lake.read(shadow.report_key(cfg.name, v2)))
    assert stored["verdict"] == shadow.WORSE

    # the deployment DAG's resolve task on the same evidence: it refuses and mails, through the real SMTP sink
    from sluice.airflow.callbacks import AlertedFailure
    from sluice.airflow.deployment_operators import ResolveReleaseOperator

    op = ResolveReleaseOperator(task_id="resolve", model=cfg.name, lake_root=lake.root)
    op.config = lambda: cfg  # the test's copy of the loans config (its own model name)
    op.registry = registry
    ti = SimpleNamespace(log_url="http://airflow.test/log", task_id="resolve")
    with pytest.raises(AlertedFailure, match=f"v{v2} refused by its shadow comparison"):
        op.execute({"ti": ti, "run_id": "manual__test", "params": {"action": "deploy", "version": None}})
    assert ledger.history(registry, cfg.name)[-1]["decision"] == "refused by shadow"
    assert registry.by_alias(cfg.name, CHAMPION).version == v1
    (mail,) = read_outbox(smtp_sink)
    text = mail.get_body(("plain",)).get_content()
    page = mail.get_body(("html",)).get_content()
    print(mail["Subject"], text, sep="\n")
    assert mail["Subject"] == f"[sluice] {cfg.name}: v{v2} NOT deployed, shadow comparison failed"
    assert mail["To"] == ", ".join(cfg.alerts.emails)
    assert f"Still serving: the champion v{v1}." in text
    assert f"Shadow comparison (JSON): file://{lake.root}/reports/{cfg.name}/shadow/v{v2}/comparison.json" in text
    assert "is worse than the champion live" in text and "3 labelled shadow day(s)" in text
    assert f"Shadow evidence (challenger v{v2})" in text and "waiting for labels" in text
    assert "although its offline gate passed" in text
    assert "<h3>Shadow evidence (challenger v" in page and "<table" in page
