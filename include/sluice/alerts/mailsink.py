"""A local SMTP server that stores every message it receives as an ``.eml`` file.

The embedded stack's stand-in for a mail relay: alerts are real SMTP conversations, and the outbox folder
is where a person (or a test) reads them. Each file is written under a temporary name and renamed, so a
reader never sees half a message.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import re
import signal
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

log = logging.getLogger("sluice.mailsink")


class OutboxHandler:
    """aiosmtpd handler: one ``.eml`` file per accepted message, envelope recipients kept in a header."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        self.outbox.mkdir(parents=True, exist_ok=True)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        raw = data if isinstance(data, bytes) else data.encode()
        subject = message_from_bytes(raw, policy=policy.default).get("Subject", "") or "no-subject"
        slug = re.sub(r"[^A-Za-z0-9]+", "-", subject).strip("-")[:60] or "mail"
        with self._lock:
            name = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{next(self._seq):05d}-{slug}.eml"
        head = f"X-Sluice-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n".encode()
        tmp = self.outbox / f".{name}.tmp"
        tmp.write_bytes(head + raw)
        tmp.rename(self.outbox / name)
        log.info("stored %s for %s", name, envelope.rcpt_tos)
        return "250 Message accepted for delivery"


def read_outbox(outbox: str | Path) -> list[EmailMessage]:
    """Messages in arrival order (file names sort by time and sequence)."""
    out: list[EmailMessage] = []
    for path in sorted(Path(outbox).glob("*.eml")):
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(msg, EmailMessage)  # policy.default parses into EmailMessage
        out.append(msg)
    return out


def start(outbox: Path, host: str = "127.0.0.1", port: int = 8025) -> Controller:
    controller = Controller(OutboxHandler(outbox), hostname=host, port=port)
    controller.start()
    return controller


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Local SMTP sink: stores each message as an .eml file.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8025)
    ap.add_argument("--outbox", type=Path, required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    controller = start(args.outbox, args.host, args.port)
    log.info("SMTP sink on %s:%s, outbox %s", args.host, args.port, args.outbox)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
