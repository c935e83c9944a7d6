"""Builds the FastAPI app around an engine: warm-up in the background, then the scheduler starts."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from tts_server import __version__
from tts_server.api import routes_catalog, routes_health, routes_synthesis
from tts_server.api.errors import HANDLERS
from tts_server.api.middleware import RequestContextMiddleware
from tts_server.api.state import ServerState
from tts_server.engines.base import Engine
from tts_server.metrics import Metrics
from tts_server.scheduler import Scheduler
from tts_server.service import SynthesisService
from tts_server.settings import Settings

log = logging.getLogger(__name__)


async def _warm_up(state: ServerState) -> None:
    info = state.engine.info
    started = time.monotonic()
    try:
        for engine in state.engines:
            await asyncio.to_thread(engine.warm_up)
    except Exception as exc:
        state.load_error = f"warm-up failed: {exc}"
        log.exception("engine %s warm-up failed; /readyz stays 503", info.name)
        return
    state.metrics.warmup_seconds.labels(info.name).set(time.monotonic() - started)
    # The worker owns the engine from here on: nothing else may call it.
    state.scheduler.start()
    state.ready = True
    state.metrics.ready.labels(info.name).set(1)
    log.info("engine %s ready on %s after %.2fs", info.name, info.device, time.monotonic() - started)


def create_app(settings: Settings, engines: Sequence[Engine]) -> FastAPI:
    """An app serving `engines`: instances of one model, each to be owned by its own worker thread."""
    metrics = Metrics()
    info = engines[0].info
    scheduler = Scheduler(
        engines, metrics, settings.max_queue, settings.batch_size, settings.batch_wait_ms / 1000
    )
    service = SynthesisService(info, scheduler, settings)
    state = ServerState(settings, metrics, list(engines), scheduler, service)
    metrics.engine_info.info(
        {"engine": info.name, "model": info.model_id, "runtime": info.runtime, "device": info.device,
         "precision": info.precision, "workers": str(len(engines)), "tier": settings.tier or "",
         "requested_device": settings.device}
    )  # fmt: skip
    metrics.for_engine(info.name, info.device)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        warm = asyncio.create_task(_warm_up(state))
        yield
        warm.cancel()
        scheduler.stop()

    app = FastAPI(
        title="Voicefleet TTS server",
        version=__version__,
        description="Text-to-speech: native /tts, OpenAI-compatible /v1/audio/speech, probes, metrics.",
        lifespan=lifespan,
    )
    app.state.voicefleet = state
    for exc_type, handler in HANDLERS.items():
        app.add_exception_handler(exc_type, handler)
    app.include_router(routes_synthesis.router)
    app.include_router(routes_catalog.router)
    app.include_router(routes_health.router)
    page = resources.files("tts_server").joinpath("web/index.html").read_text(encoding="utf-8")

    @app.get("/", include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page)

    app.add_middleware(RequestContextMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    return app


async def drain(state: ServerState, timeout_s: float) -> bool:
    """Stop admitting work, report not-ready, and wait for every accepted request to finish."""
    state.scheduler.begin_drain()
    state.metrics.draining.set(1)
    state.metrics.ready.labels(state.engine.info.name).set(0)
    finished = await state.scheduler.wait_idle(timeout_s)
    log.info("drain %s", "complete" if finished else f"timed out after {timeout_s}s")
    return finished
