"""Shadow scoring and the live paired comparison, on a real lake folder: which versions shadow, what a day's
evidence is (labelled, waiting for labels, served by the version itself), the pooled verdict through the gate's
paired bootstrap, and what ``deploy.require_shadow_days`` makes of it."""

from __future__ import annotations

import copy
import datetime as dt
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sluice.config import MODELS_DIR, ConfigError, ModelConfig, get_model_config, load_model_config
from sluice.deployment import shadow
from sluice.lake import Lake, LocalStorage

pytestmark = pytest.mark.unit

START = dt.date(2025, 2, 1)


def config(**deploy) -> ModelConfig:
    base = get_model_config("loans")
    return base.model_copy(update={"deploy": base.deploy.model_copy(update=deploy)})


def parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def world(
    lake: Lake,
    cfg: ModelConfig,
    *,
    days: int,
    labelled: int,
    shadow_quality: float,
    shadow_noise: float = 0.5,
    version: str = "2",
    champion: str = "1",
    rows: int = 600,
) -> None:
    """``days`` days scored by the champion (informative scores) and shadow-scored by ``version`` (scores that
    are ``shadow_quality`` x signal + ``shadow_noise`` x N(0, 1)); the first ``labelled`` days have their labels."""
    rng = np.random.default_rng(7)
    for i in range(days):
        ds = START + dt.timedelta(days=i)
        ids = [f"a{i}-{j}" for j in range(rows)]
        signal = rng.normal(size=rows)
        y = (rng.random(rows) < 1 / (1 + np.exp(-2 * signal))).astype(int)
        champ = 1 / (1 + np.exp(-(signal + rng.normal(scale=0.5, size=rows))))
        shad = 1 / (1 + np.exp(-(shadow_quality * signal + rng.normal(scale=shadow_noise, size=rows))))
        for zone, name, scores, v in (
            ("predictions", cfg.name, champ, champion),
            ("shadow", shadow.shadow_name(cfg.name, version), shad, version),
        ):
            frame = pd.DataFrame({"application_id": ids, "score": scores, "model_version": v, "model_run_id": "r"})
            lake.publish(zone, name, ds, {".parquet": parquet(frame)}, meta={"model_version": v})
        if i < labelled:
            labels = pd.DataFrame({"application_id": ids, "defaulted": y})
            lake.put_landing("labels", cfg.labels.dataset, shadow.label_ds(cfg, ds), {"part.parquet": parquet(labels)})


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(LocalStorage(tmp_path / "lake"))


@pytest.mark.parametrize(
    ("mode", "champion", "challenger", "previous", "expected"),
    [
        ("while_waiting", "1", "2", None, {"2": "challenger"}),
        ("while_waiting", "2", "2", "1", {}),  # the challenger was deployed: nothing waits
        ("while_waiting", None, "1", None, {}),  # nothing serves: no champion to compare with
        ("always", "2", None, "1", {"1": "previous_champion"}),
        ("always", "2", "3", "1", {"3": "challenger", "1": "previous_champion"}),
        ("off", "1", "2", None, {}),
    ],
)
def test_which_versions_shadow(mode, champion, challenger, previous, expected) -> None:
    roles = shadow.shadow_roles(config(shadow=mode), champion=champion, challenger=challenger, previous=previous)
    assert roles == expected


def test_a_challenger_worse_live_is_refused_once_enough_days_are_labelled(lake: Lake) -> None:
    cfg = config(require_shadow_days=3)
    world(lake, cfg, days=4, labelled=3, shadow_quality=0.2)
    evidence = shadow.compare(cfg, lake, "2")
    print(*shadow.summary_lines(evidence), sep="\n")
    assert [d["status"] for d in evidence["days"]] == ["labelled"] * 3 + ["waiting_for_labels"]
    assert evidence["labelled_days"] == 3 and evidence["rows"] == 1800
    assert evidence["champion_versions"] == ["1"]
    assert evidence["verdict"] == shadow.WORSE, evidence["reason"]
    boot = evidence["bootstrap"]
    assert boot["upper"] < 0 and boot["n_samples"] == cfg.gate.bootstrap_samples
    assert evidence["shadow_metric"] < evidence["champion_metric"]
    assert shadow.decide(cfg, evidence)["decision"] == shadow.REFUSE
    assert "worse than the champion live" in shadow.decide(cfg, evidence)["reason"]
    # four required: it waits for the fourth day's labels, whatever the first three say
    waiting = shadow.decide(config(require_shadow_days=4), evidence)
    assert waiting["decision"] == shadow.WAIT and "3 of the 4 labelled shadow day(s)" in waiting["reason"]
    # not required: the evidence informs, never blocks
    assert shadow.decide(config(), evidence)["decision"] == shadow.ALLOW


def test_a_challenger_as_good_live_is_allowed(lake: Lake) -> None:
    cfg = config(require_shadow_days=2)
    world(lake, cfg, days=2, labelled=2, shadow_quality=1.0, shadow_noise=0.3)
    evidence = shadow.compare(cfg, lake, "2")
    assert evidence["verdict"] in (shadow.NO_DIFFERENCE, shadow.BETTER), evidence["reason"]
    assert shadow.decide(cfg, evidence)["decision"] == shadow.ALLOW


def test_days_the_version_served_itself_are_not_evidence(lake: Lake) -> None:
    cfg = config(require_shadow_days=1)
    world(lake, cfg, days=2, labelled=2, shadow_quality=0.2, version="2", champion="2")
    evidence = shadow.compare(cfg, lake, "2")
    assert [d["status"] for d in evidence["days"]] == ["self", "self"]
    assert evidence["verdict"] == shadow.NO_EVIDENCE and evidence["labelled_days"] == 0
    assert shadow.decide(cfg, evidence)["decision"] == shadow.WAIT


def test_no_shadow_day_at_all_waits_when_required() -> None:
    assert shadow.decide(config(require_shadow_days=1), None)["decision"] == shadow.WAIT
    assert shadow.decide(config(), None)["decision"] == shadow.ALLOW


def test_an_undefined_interval_fails_closed(lake: Lake) -> None:
    cfg = config(require_shadow_days=1)
    evidence = {"version": "2", "labelled_days": 1, "shadow_days": 1, "verdict": shadow.UNDETERMINED, "reason": "x"}
    assert shadow.decide(cfg, evidence)["decision"] == shadow.REFUSE


def test_evidence_round_trips_through_the_lake(lake: Lake) -> None:
    cfg = config()
    world(lake, cfg, days=1, labelled=1, shadow_quality=1.0)
    evidence = shadow.compare(cfg, lake, "2")
    uri = shadow.write_evidence(lake, evidence)
    assert uri.endswith("reports/loans/shadow/v2/comparison.json")
    back = shadow.read_evidence(lake, "loans", "2")
    assert back is not None
    assert {k: back[k] for k in ("verdict", "reason", "days", "bootstrap")} == {
        k: evidence[k] for k in ("verdict", "reason", "days", "bootstrap")
    }
    assert shadow.read_evidence(lake, "loans", "9") is None


def test_requiring_shadow_days_with_shadow_off_is_a_config_error(tmp_path: Path) -> None:
    data = copy.deepcopy(yaml.safe_load((MODELS_DIR / "loans.yaml").read_text()))
    data["deploy"] = {"target": "batch", "shadow": "off", "require_shadow_days": 3}
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="require_shadow_days: 3 needs shadow scoring"):
        load_model_config(path)


def test_shadow_scores_publish_like_predictions_and_a_rerun_changes_nothing(lake: Lake) -> None:
    from sluice.datagen.writer import seed_feature_store
    from sluice.training.model import fit
    from sluice.training.snapshot import build_snapshot

    cfg = config()
    seed_feature_store(cfg, lake, START, 9, rows_per_day=300)  # the first days' labels land 7 days later
    model = fit(cfg, build_snapshot(cfg, lake, START + dt.timedelta(days=8), 9).frame)
    first = shadow.score_shadow(cfg, lake, START, model, version="7", run_id="run7", workers=1)
    again = shadow.score_shadow(cfg, lake, START, model, version="7", run_id="run7", workers=1)
    assert first["key"] == "shadow/loans/v7/ds=2025-02-01"
    assert first["content_sha256"] == again["content_sha256"]
    assert lake.partitions("shadow", shadow.shadow_name("loans", "7")) == [START]
    assert lake.partitions("predictions", "loans") == []  # the served predictions are untouched
    scored = pd.read_parquet(io.BytesIO(lake.read_published("shadow", "loans/v7", START)[0]))
    assert set(scored["model_version"]) == {"7"} and len(scored) == first["rows"]


def test_unreadable_evidence_blocks_only_when_it_is_required(lake: Lake) -> None:
    from sluice.deployment.job import shadow_check

    cfg = config()
    world(lake, cfg, days=1, labelled=0, shadow_quality=1.0)
    wrong = pd.DataFrame({"application_id": ["a0-0"], "label": [1]})  # not labels.column
    lake.put_landing("labels", cfg.labels.dataset, shadow.label_ds(cfg, START), {"part.parquet": parquet(wrong)})
    plan = {"deploy": True, "action": "deploy", "version": "2", "why": "new challenger v2"}
    checked = shadow_check(cfg, lake, None, plan)  # type: ignore[arg-type]  # no registry call on this path
    assert checked["deploy"] is True and checked["shadow"]["evidence"] is None
    with pytest.raises(ValueError, match="labels lack columns \\['defaulted'\\]"):
        shadow_check(config(require_shadow_days=1), lake, None, plan)  # type: ignore[arg-type]
