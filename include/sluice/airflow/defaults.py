"""What every Sluice DAG shares: owner, retries with exponential backoff, alerts, tags."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pendulum

from sluice.airflow.callbacks import task_failure_alert
from sluice.config import ModelConfig


def default_args(cfg: ModelConfig) -> dict[str, Any]:
    return {
        "owner": cfg.owner,
        "retries": 2,
        "retry_delay": dt.timedelta(seconds=30),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": dt.timedelta(minutes=30),
        "on_failure_callback": task_failure_alert,
    }


def dag_kwargs(cfg: ModelConfig, kind: str, doc_md: str, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for ``DAG(...)`` of pipeline ``kind`` for model ``cfg``."""
    tz = "UTC"
    kwargs: dict[str, Any] = {
        "dag_id": cfg.dag_id(kind),
        "schedule": cfg.schedule,
        "start_date": pendulum.datetime(cfg.start_date.year, cfg.start_date.month, cfg.start_date.day, tz=tz),
        "end_date": (
            pendulum.datetime(cfg.end_date.year, cfg.end_date.month, cfg.end_date.day, tz=tz) if cfg.end_date else None
        ),
        "catchup": cfg.catchup,
        "max_active_runs": 4,
        "default_args": default_args(cfg),
        "tags": ["sluice", kind, cfg.name, *cfg.tags],
        "doc_md": f"{doc_md}\n\n**Model** `{cfg.name}` ({cfg.owner}): {cfg.description}",
        "params": {"model": cfg.name},
        "render_template_as_native_obj": False,
    }
    kwargs.update(overrides)
    return kwargs
