"""The scoring app of the local deployment target: our validation in front of the model, never a 500
for a bad request, never a stack trace in a response.

``create_app(model, cfg, model_version=...)`` builds it around a fitted pipeline; ``sluice.serving.server``
serves it with uvicorn on 127.0.0.1, behind the stable address of ``sluice.serving.router``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sluice.config import ModelConfig
from sluice.serving.schema import RequestError, parse_records, request_schema
from sluice.training.model import predict_scores

log = logging.getLogger(__name__)

VERSION_HEADER = "X-Sluice-Model-Version"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(
    model: Any,
    cfg: ModelConfig,
    *,
    model_version: str,
    model_sha256: str = "",
    max_body_bytes: int = 1_000_000,
    max_rows: int = 1000,
) -> FastAPI:
    schema = request_schema(cfg)
    app = FastAPI(title=f"sluice model {cfg.name} v{model_version}", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"status": "ok", "model": cfg.name, "model_version": model_version, "model_sha256": model_sha256}

    @app.post("/invocations")
    async def invocations(request: Request) -> JSONResponse:
        ctype = request.headers.get("content-type", "").split(";")[0].strip()
        if ctype != "application/json":
            return _error(415, f"Content-Type must be application/json, got {ctype or 'none'!r}")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body_bytes:
            return _error(413, f"body of {declared} bytes exceeds the limit of {max_body_bytes}")
        body = await request.body()
        if len(body) > max_body_bytes:
            return _error(413, f"body of {len(body)} bytes exceeds the limit of {max_body_bytes}")
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return _error(400, f"the body is not valid JSON: {exc}")
        try:
            frame = parse_records(payload, schema, max_rows)
        except RequestError as exc:
            return _error(exc.status, exc.message)
        try:
            scores = predict_scores(model, frame, cfg.task)
        except Exception as exc:  # the model's fault, not the caller's: say so without a stack trace
            log.exception("model %s v%s failed on a valid request", cfg.name, model_version)
            return _error(500, f"the model failed on a valid request ({type(exc).__name__}); see the server log")
        return JSONResponse(
            {"predictions": np.asarray(scores, dtype="float64").tolist(), "model_version": model_version},
            headers={VERSION_HEADER: model_version},
        )

    return app
