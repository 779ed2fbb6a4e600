"""The scoring app of the local deployment target: our validation in front of the model, never a 500
for a bad request, never a stack trace in a response.

``create_app(model, cfg, model_version=...)`` builds it around a fitted pipeline; ``sluice.serving.server``
serves it with uvicorn on 127.0.0.1, behind the stable address of ``sluice.serving.router``.

A body the JSON parser cannot take (arrays or objects nested thousands deep, an integer of more digits
than Python converts) is a 400; a number outside the float range a 422 naming the field. A category the
model never saw is scored (the encoder ignores it) and counted: the ``X-Sluice-Unknown-Categories`` header
of the answer (``col=n,...``) and ``sluice_unknown_category_values_total`` at ``GET /metrics``.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from sluice.config import ModelConfig
from sluice.serving.categories import header_value, known_categories, unknown_counts
from sluice.serving.headers import UNKNOWN_HEADER, VERSION_HEADER
from sluice.serving.metrics import ServerMetrics
from sluice.serving.schema import RequestError, parse_records, request_schema
from sluice.training.model import predict_scores

log = logging.getLogger(__name__)


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
    known = known_categories(model)
    metrics = ServerMetrics(cfg.name, model_version)
    app = FastAPI(title=f"sluice model {cfg.name} v{model_version}", docs_url=None, redoc_url=None, openapi_url=None)

    def refuse(status: int, message: str) -> JSONResponse:
        metrics.answered(status)
        return _error(status, message)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # a bug of ours, never the caller's: still the JSON error shape, the traceback only in the log
        log.error("unexpected %s answering %s %s", type(exc).__name__, request.method, request.url.path)
        return refuse(500, f"internal error ({type(exc).__name__}); see the server log")

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"status": "ok", "model": cfg.name, "model_version": model_version, "model_sha256": model_sha256}

    @app.get("/metrics")
    def get_metrics() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.post("/invocations")
    async def invocations(request: Request) -> JSONResponse:
        ctype = request.headers.get("content-type", "").split(";")[0].strip()
        if ctype != "application/json":
            return refuse(415, f"Content-Type must be application/json, got {ctype or 'none'!r}")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body_bytes:
            return refuse(413, f"body of {declared} bytes exceeds the limit of {max_body_bytes}")
        body = await request.body()
        if len(body) > max_body_bytes:
            return refuse(413, f"body of {len(body)} bytes exceeds the limit of {max_body_bytes}")
        try:
            payload = json.loads(body)
        except RecursionError:
            return refuse(400, "the body nests arrays or objects deeper than this server parses")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return refuse(400, f"the body is not valid JSON: {exc}")
        except ValueError:  # an integer literal over the interpreter's digit limit
            return refuse(
                400,
                f"the body holds an integer of more than {sys.get_int_max_str_digits()} digits, which this "
                "server does not parse",
            )
        try:
            frame = parse_records(payload, schema, max_rows)
        except RequestError as exc:
            return refuse(exc.status, exc.message)
        unknown = unknown_counts(frame, known)
        try:
            scores = predict_scores(model, frame, cfg.task)
        except Exception as exc:  # the model's fault, not the caller's: say so without a stack trace
            log.exception("model %s v%s failed on a valid request", cfg.name, model_version)
            return refuse(500, f"the model failed on a valid request ({type(exc).__name__}); see the server log")
        metrics.answered(200, rows=len(frame), unknown=unknown)
        headers = {VERSION_HEADER: model_version}
        if unknown:
            headers[UNKNOWN_HEADER] = header_value(unknown)
        return JSONResponse(
            {"predictions": np.asarray(scores, dtype="float64").tolist(), "model_version": model_version},
            headers=headers,
        )

    return app
