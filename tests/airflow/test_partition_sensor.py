"""The landing sensor defers (its worker slot is freed) and its trigger fires when the marker lands."""

from __future__ import annotations

import asyncio
import threading

import pytest

from sluice.airflow.sensors import PartitionSensor
from sluice.airflow.triggers import PartitionReadyTrigger
from sluice.lake import open_lake

KEY = "landing/loans/ds=2025-01-02/_SUCCESS"


def test_trigger_serialize_round_trip() -> None:
    trig = PartitionReadyTrigger(KEY, lake_root="s3://b/p", aws_conn_id="aws_x", poll_interval=2.5)
    path, kwargs = trig.serialize()
    assert path == "sluice.airflow.triggers.PartitionReadyTrigger"
    from airflow.sdk._shared.module_loading import import_string

    again = import_string(path)(**kwargs)
    assert again.serialize() == (path, kwargs)
    assert kwargs == {"key": KEY, "lake_root": "s3://b/p", "aws_conn_id": "aws_x", "poll_interval": 2.5}


def test_sensor_defers_instead_of_holding_a_worker(lake_root) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    sensor = PartitionSensor(task_id="wait", key=KEY, poll_interval=1, timeout=60)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context={})
    assert isinstance(deferred.value.trigger, PartitionReadyTrigger)
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout.total_seconds() == 60


def test_sensor_returns_at_once_when_the_partition_is_there(lake_root) -> None:
    open_lake().put_landing("landing", "loans", "2025-01-02", {"a.csv": b"x\n"})
    out = PartitionSensor(task_id="wait", key=KEY).execute(context={})
    assert out["status"] == "ready" and out["deferred"] is False


def _first_event(trigger: PartitionReadyTrigger, timeout: float):
    async def go():
        gen = trigger.run()
        return await asyncio.wait_for(gen.__anext__(), timeout)

    return asyncio.run(go())


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_trigger_fires_when_the_marker_lands(backend, lake_root, request) -> None:
    if backend == "s3":
        request.getfixturevalue("s3_lake")
    lake = open_lake()
    threading.Timer(1.5, lambda: lake.put_landing("landing", "loans", "2025-01-02", {"a.csv": b"x\n"})).start()
    event = _first_event(PartitionReadyTrigger(KEY, poll_interval=0.2), timeout=30)
    assert event.payload["status"] == "ready" and event.payload["key"] == KEY and event.payload["polls"] >= 1


def test_trigger_reports_errors_instead_of_hanging(monkeypatch) -> None:
    monkeypatch.setenv("SLUICE_LAKE", "ftp://nowhere")
    event = _first_event(PartitionReadyTrigger(KEY, poll_interval=0.1), timeout=10)
    assert event.payload["status"] == "error" and "ftp://nowhere" in event.payload["message"]
