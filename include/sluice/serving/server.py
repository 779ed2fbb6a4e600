"""One model server process: a verified model directory behind the scoring app, on 127.0.0.1.

    python -m sluice.serving.server --model loans --version 3 --model-dir DIR --sha256 HEX --port 8601

The model file is re-hashed before it is loaded; a mismatch exits with status 3 and says so, so a
corrupted artifact never answers a request. Infra validation and the local target start this very
command, so what is validated is what serves.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

EXIT_MISMATCH = 3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sluice.serving.server", description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="model name: include/models/<model>.yaml")
    ap.add_argument("--config", type=Path, help="the model config as JSON (default: include/models/<model>.yaml)")
    ap.add_argument("--version", required=True, help="the registry version served (answered in X-Sluice-Model-Version)")
    ap.add_argument("--model-dir", required=True, type=Path, help="the MLflow model directory of that version")
    ap.add_argument(
        "--sha256", required=True, help="the model file's sha256 recorded at training: checked before loading"
    )
    ap.add_argument("--port", required=True, type=int, help="port on 127.0.0.1")
    ap.add_argument("--max-rows", type=int, default=1000, help="records per request at most (default 1000; more: 413)")
    ap.add_argument(
        "--max-body-bytes", type=int, default=1_000_000, help="request body size at most (default 1000000; more: 413)"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("sluice.serving.server")

    from sluice.config import ModelConfig, get_model_config
    from sluice.registry.artifact import DeploymentError, load_model, model_dir_sha256

    try:
        name, got = model_dir_sha256(args.model_dir)
    except DeploymentError as exc:
        print(f"refusing to serve {args.model} v{args.version}: {exc}", file=sys.stderr)
        return EXIT_MISMATCH
    if got != args.sha256:
        print(
            f"refusing to serve {args.model} v{args.version}: {name} has sha256 {got}, expected {args.sha256}",
            file=sys.stderr,
        )
        return EXIT_MISMATCH
    import uvicorn

    from sluice.serving.app import create_app

    cfg = ModelConfig.model_validate_json(args.config.read_text()) if args.config else get_model_config(args.model)
    model = load_model(args.model_dir)
    app = create_app(
        model,
        cfg,
        model_version=args.version,
        model_sha256=args.sha256,
        max_body_bytes=args.max_body_bytes,
        max_rows=args.max_rows,
    )
    log.info("serving %s v%s (%s sha256 %s) on 127.0.0.1:%s", args.model, args.version, name, got[:16], args.port)
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, timeout_graceful_shutdown=30
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
