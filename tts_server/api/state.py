"""What the routes share: settings, metrics, and the engine's scheduler once it is warm."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from tts_server.api.errors import ApiError
from tts_server.engines.base import Engine
from tts_server.metrics import Metrics
from tts_server.scheduler import Scheduler
from tts_server.service import SynthesisService
from tts_server.settings import Settings


@dataclass
class ServerState:
    settings: Settings
    metrics: Metrics
    engines: list[Engine]
    scheduler: Scheduler
    service: SynthesisService
    ready: bool = False
    load_error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def engine(self) -> Engine:
        """The first instance; all instances run the same model, so its info describes them all."""
        return self.engines[0]

    @property
    def draining(self) -> bool:
        return self.scheduler.draining


def server_state(request: Request) -> ServerState:
    return request.app.state.voicefleet


def ready_service(request: Request) -> SynthesisService:
    """Dependency for synthesis routes: refuses work until warm-up is done and while draining."""
    state = server_state(request)
    if state.draining:
        state.metrics.rejected.labels("draining").inc()
        raise ApiError(503, "draining", "server is draining; retry on another replica", retry_after=1)
    if not state.ready:
        state.metrics.rejected.labels("not_ready").inc()
        raise ApiError(503, "not_ready", state.load_error or "engine is warming up", retry_after=2)
    return state.service
