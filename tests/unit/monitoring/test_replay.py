"""``sluice.apps.replay`` on generated loans with a known covariate shift: the replay alarms on the shift,
retrains once, and the new champion's reference (trained on shifted rows) stops the alarms."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import yaml

from sluice.apps.cli import main
from sluice.apps.replay import ReplayError, format_summary, replay, with_monitoring
from sluice.config import get_model_config

pytestmark = pytest.mark.unit

START = dt.date(2025, 1, 1)
TRAIN_DAYS = 10
SHIFT = dt.date(2025, 1, 13)  # credit_score -1 sd from here on: in the walk, not in the first champion's window
QUIET = (SHIFT - START).days - TRAIN_DAYS  # days judged before the shift
PERSIST = 7  # drift on 7 of the last 7 days: the retraining's window is then all shifted days
END = SHIFT + dt.timedelta(days=PERSIST + 2)


def days(first: dt.date, last: dt.date) -> list[str]:
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def loans_cfg():
    """Loans, made small: labels a day late and 7-day retraining windows, so that a retraining 7 days into the
    shift trains (and profiles) shifted rows only; 40 boosting rounds, fast and not overfitted on ~4,000
    training rows (an overfitted model's in-sample scores, which the reference profiles, drift from its
    scores on new rows); a 0.03 margin for the test rows of a short window."""
    cfg = get_model_config("loans")
    cfg = cfg.model_copy(
        update={
            "labels": cfg.labels.model_copy(update={"delay_days": 1}),
            "training": cfg.training.model_copy(
                update={
                    "window_days": PERSIST,
                    "estimator": cfg.training.estimator.model_copy(update={"params": {"max_iter": 40}}),
                }
            ),
            # a latency budget measures the machine, not the model: on a busy CI runner one row took 122 ms
            "gate": cfg.gate.model_copy(update={"non_inferiority_margin": 0.03, "max_latency_ms": 5000.0}),
        }
    )
    return with_monitoring(cfg, {"persistence.k": PERSIST, "persistence.n": PERSIST, "cooldown_days": 14})


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("replay")
    scenario = tmp / "shift.yaml"
    scenario.write_text(
        yaml.safe_dump(
            {
                "name": "credit",
                "covariate_shifts": [{"start": SHIFT.isoformat(), "column": "credit_score", "shift_sd": -1.0}],
            }
        )
    )
    lines: list[str] = []
    result = replay(
        loans_cfg(),
        START,
        END,
        train_days=TRAIN_DAYS,
        lake=tmp / "lake",
        scenario_path=scenario,
        rows_per_day=1000,
        validate=False,  # the landing suite (GX) is tested with the features job; here it only costs time
        echo=lines.append,
    )
    return {"result": result, "lines": lines}


def test_alarms_on_the_shift_retrains_once_and_the_new_reference_stops_them(run) -> None:
    r = run["result"]
    first_end = START + dt.timedelta(days=TRAIN_DAYS - 1)
    assert r["initial"]["decision"] == "PASS" and r["initial"]["window"] == [START.isoformat(), first_end.isoformat()]
    retrain_day = SHIFT + dt.timedelta(days=PERSIST - 1)
    # quiet before the shift; every shifted day judged by v1 alarms, credit_score first (by importance)
    assert [a["ds"] for a in r["alarms"]] == days(SHIFT, retrain_day)
    for alarm in r["alarms"]:
        top = alarm["features"][0]
        assert top["feature"] == "credit_score" and "mean shifted -" in top["reason"], alarm
    # persistence holds the retraining back until 7 of 7 days drifted ...
    by_day = {d["ds"]: d for d in r["days"]}
    held = f"no drift: 1 of the last {QUIET + 1} intervals drifted (needs {PERSIST} of {PERSIST})"
    assert by_day[SHIFT.isoformat()]["decision"]["reason"] == held
    # ... then one retraining, on the shifted window, passes the gate and becomes v2
    assert len(r["retrains"]) == 1
    rec = r["retrains"][0]
    assert (rec["ds"], rec["source"], rec["decision"], rec["new_version"]) == (
        retrain_day.isoformat(),
        "drift",
        "PASS",
        2,
    )
    assert rec["window"] == [SHIFT.isoformat(), retrain_day.isoformat()]
    # v2's reference knows the shift: the days after it are judged by v2 and none alarms
    after = [d for d in r["days"] if d["ds"] > retrain_day.isoformat()]
    assert len(after) == (END - retrain_day).days and all(
        d["model_version"] == 2 and d["drift"] is False for d in after
    )
    s = r["summary"]
    assert (s["drift_alarms"], s["retrains"], s["gate"]["PASS"], s["final_champion"]) == (PERSIST, 1, 1, 2)
    assert s["alarms_by_feature"]["credit_score"] == PERSIST
    assert s["days_judged"] == (END - START).days + 1 - TRAIN_DAYS
    # labels a day late: every day but the last was checked against the test metric of the version that scored it
    assert s["performance_checks"] == s["days_judged"] - 1 and s["decays"] == 0
    json.dumps(r, allow_nan=False)  # strict JSON


def test_prints_a_line_per_event_and_month_and_a_summary(run) -> None:
    lines, r = run["lines"], run["result"]
    assert any(line.startswith(f"{SHIFT} ALARM v1: credit_score") for line in lines)
    assert any("RETRAIN (drift)" in line and "gate PASS -> champion v2" in line for line in lines)
    assert any(line.startswith("-- 2025-01:") for line in lines)
    quiet = [line for line in lines if line.startswith(tuple(days(START + dt.timedelta(days=TRAIN_DAYS), SHIFT)[:-1]))]
    assert quiet == []  # nothing happened on those days: no line
    text = format_summary(r)
    assert f"drift alarms       {PERSIST}" in text and "gate               PASS 1, FAIL 0" in text
    assert "credit_score: mean shifted -" in text


def test_cli_replays_from_an_existing_lake(run, tmp_path, capsys, monkeypatch) -> None:
    """The run's lake is published already: the CLI reuses it, prints the summary and writes the JSON."""
    import sluice.apps.cli

    monkeypatch.setattr(sluice.apps.cli, "get_model_config", lambda name: loans_cfg())
    out, lake = tmp_path / "replay.json", run["result"]["lake"]

    def cli(*argv: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exit_:
            main(["replay", "loans", *argv])
        return (exit_.value.code, *capsys.readouterr())

    code, stdout, _ = cli(
        "--from", "2025-01-03", "--to", "2025-01-12", "--train-days", "7", "--lake", lake, "--json", str(out)
    )
    assert code == 0, stdout
    assert "0 days published" in stdout and "champion v1 trained on 2025-01-03..2025-01-09" in stdout
    assert "drift alarms       0" in stdout and f"wrote {out}" in stdout
    written = json.loads(out.read_text())
    assert [d["ds"] for d in written["days"]] == days(dt.date(2025, 1, 10), dt.date(2025, 1, 12))
    code, _, err = cli("--from", "2025-01-01", "--to", "2025-01-01", "--lake", lake)
    assert code == 1 and "nothing to replay" in err
    code, _, err = cli("--from", "2025-01-01", "--to", "2025-01-05", "--set", "persistence.z=1")
    assert code == 1 and "no setting 'persistence.z'" in err


def test_with_monitoring_validates_overrides() -> None:
    cfg = get_model_config("loans")
    assert with_monitoring(cfg, {"persistence.k": 2, "persistence.n": 3}).monitoring.persistence.k == 2
    with pytest.raises(ValueError, match="must not exceed"):
        with_monitoring(cfg, {"persistence.k": 4})
    with pytest.raises(ValueError, match="no section"):
        with_monitoring(cfg, {"alpha.x": 1})
    with pytest.raises(ReplayError, match="before"):
        replay(cfg, START, START - dt.timedelta(days=1))
