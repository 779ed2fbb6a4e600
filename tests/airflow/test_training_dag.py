"""The training DAG run through Airflow (dag.test on the metadata DB): first model promoted; label-shuffled data
refused with the email read back from a real SMTP server; a genuinely better candidate passes. Real MLflow
server, generated data in a local lake. (An airflow-tier test: no scheduler, so no embedded stack.)
"""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pandas as pd
import pytest
import yaml
from machine import shared_machine_models

from sluice.alerts.mailsink import read_outbox
from sluice.config import get_model_config
from sluice.datagen.corrupt import render
from sluice.datagen.writer import generate_into_lake
from sluice.features.job import publish_features
from sluice.lake import open_lake
from sluice.registry.mlflow_registry import CHALLENGER, CHAMPION

START, DAYS = dt.date(2025, 1, 1), 36


@pytest.fixture(scope="module")
def training_dag(airflow_db, tmp_path_factory):
    """The loans training DAG over loans.yaml with a shared machine's latency budgets (tests/machine.py)."""
    from sluice.airflow.runner import load_dag

    models = shared_machine_models(tmp_path_factory.mktemp("models"), "loans")
    data = yaml.safe_load((models / "loans.yaml").read_text())
    data["training"]["estimator"]["params"]["max_iter"] = 50  # the gate's verdicts, not the model's last digit
    (models / "loans.yaml").write_text(yaml.safe_dump(data))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLUICE_MODELS_DIR", str(models))
        yield load_dag("loans_training")


def run(dag, **conf):
    dr = dag.test(run_conf=conf)
    return dr, {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def shuffle_labels(lake, dataset: str, column: str) -> dict[str, bytes]:
    """Permute the label column inside every label partition; returns the originals to restore."""
    originals = {}
    rng = np.random.default_rng(0)
    for d in lake.partitions("labels", dataset, published_only=False):
        files = lake.landing_files("labels", dataset, d)
        originals[d] = files
        shuffled = {}
        for name, data in files.items():
            df = pd.read_parquet(io.BytesIO(data))
            shuffled[name] = render(df.assign(**{column: rng.permutation(df[column].to_numpy())}), "parquet")
        lake.put_landing("labels", dataset, d, shuffled)
    return originals


def test_first_promotes_shuffled_is_refused_better_passes(training_dag, lake_root, smtp_sink, loans_registry) -> None:
    cfg = get_model_config("loans")
    lake = open_lake()
    generate_into_lake(cfg, lake, START, DAYS, rows_per_day=1000)
    for i in range(DAYS):
        publish_features(cfg, lake, START + dt.timedelta(days=i))
    registry = loans_registry  # no loans version yet: the first training has no champion to beat

    # 1. the first training: no champion, only the absolute rules apply, and it becomes the challenger
    _, states = run(training_dag, end_ds="2025-01-18", window_days=14, note="first model")
    assert states == {k: "success" for k in ("plan", "train", "evaluate", "gate", "approve", "promote")}, states
    first = registry.by_alias("loans", CHALLENGER)
    assert first is not None and first.tags["gate.decision"] == "PASS"
    for tag in ("airflow.dag_id", "airflow.run_id", "data.manifest_sha256", "code.git_sha", "config.hash"):
        assert first.tags.get(tag), f"lineage tag {tag} missing on the version"
    assert first.tags["airflow.dag_id"] == "loans_training"
    registry.set_alias("loans", CHAMPION, first.version)  # what the deployment DAG will do
    assert read_outbox(smtp_sink) == []

    # 2. label-shuffled data: refused, red, mailed, champion and challenger untouched
    originals = shuffle_labels(lake, cfg.labels.dataset, cfg.labels.column)
    _, states = run(training_dag, end_ds="2025-01-30", window_days=28, force=True, note="shuffled drill")
    assert states["gate"] == "failed" and states["approve"] == states["promote"] == "upstream_failed", states
    assert registry.by_alias("loans", CHAMPION).version == first.version
    assert registry.by_alias("loans", CHALLENGER).version == first.version
    (mail,) = read_outbox(smtp_sink)
    assert mail["Subject"] == "[sluice] loans: candidate NOT promoted, gate FAIL"
    assert mail["X-Sluice-Envelope-To"] == ", ".join(cfg.alerts.emails)
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    for body in (text, html):
        assert "roc_auc" in body and "FAIL" in body
        assert "/dags/loans_training/runs/" in body and "/#/experiments/" in body  # task log, MLflow run

    # 3. restore the labels; more data gives a genuinely better candidate, which passes against the champion
    for d, files in originals.items():
        lake.put_landing("labels", cfg.labels.dataset, d, files)
    _, states = run(training_dag, end_ds="2025-02-05", window_days=34, note="more data")
    assert states["gate"] == "success" and states["promote"] == "success", states
    better = registry.by_alias("loans", CHALLENGER)
    assert int(better.version) > int(first.version)
    assert registry.by_alias("loans", CHAMPION).version == first.version, "only deployment moves the champion"
