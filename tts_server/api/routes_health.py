"""Probes and metrics; never behind the API key so kubelets and Prometheus can reach them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tts_server.api.errors import error_response
from tts_server.api.state import server_state

router = APIRouter(tags=["health"])


@router.get("/livez")
def livez(request: Request) -> JSONResponse:
    """Fails only when the engine worker is stuck in one call past engine_timeout_s: restart me."""
    state = server_state(request)
    stuck = state.scheduler.stuck_for()
    if stuck > state.settings.engine_timeout_s:
        return error_response(503, "engine_stuck", f"engine call running for {stuck:.0f}s")
    return JSONResponse({"status": "alive"})


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """200 only after warm-up synthesized real audio, and never while draining."""
    state = server_state(request)
    if state.draining:
        return error_response(503, "draining", "draining after SIGTERM")
    if not state.ready:
        return error_response(503, "not_ready", state.load_error or "engine is warming up")
    return JSONResponse(
        {"status": "ready", "engine": state.engine.info.name, "queue_depth": state.scheduler.queue_depth()}
    )


router.add_api_route("/healthz", readyz, methods=["GET"], include_in_schema=False)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    return Response(generate_latest(server_state(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)
