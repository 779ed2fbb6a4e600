"""Triggers: wait in the triggerer's event loop, holding no worker slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class PartitionReadyTrigger(BaseTrigger):
    """Fires when a lake key exists (a landing ``_SUCCESS`` marker or a partition manifest).

    The blocking existence check (a stat or an S3 HEAD) runs in a thread, so the event loop keeps serving
    every other trigger while it waits.
    """

    def __init__(
        self, key: str, lake_root: str | None = None, aws_conn_id: str = "aws_default", poll_interval: float = 30.0
    ):
        super().__init__()
        self.key = key
        self.lake_root = lake_root
        self.aws_conn_id = aws_conn_id
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "key": self.key,
                "lake_root": self.lake_root,
                "aws_conn_id": self.aws_conn_id,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from sluice.airflow.hooks import LakeHook

        try:
            lake = await asyncio.to_thread(LakeHook(self.lake_root, self.aws_conn_id).get_conn)
            polls = 0
            while not await asyncio.to_thread(lake.storage.exists, self.key):
                polls += 1
                await asyncio.sleep(self.poll_interval)
            yield TriggerEvent({"status": "ready", "key": self.key, "uri": lake.uri(self.key), "polls": polls})
        except Exception as exc:  # report, so the task fails with the reason instead of a silent retry
            yield TriggerEvent({"status": "error", "key": self.key, "message": f"{type(exc).__name__}: {exc}"})
