"""Engines by name. Imports are lazy so a server only loads the libraries of the engine it runs."""

from __future__ import annotations

import os
from collections.abc import Callable

from tts_server.engines.base import Engine, EngineUnavailable
from tts_server.settings import Settings


def _baker(settings: Settings) -> Engine:
    from tts_server.engines.baker.torch_engine import BakerTorchEngine

    return BakerTorchEngine(
        device=settings.device,
        precision=settings.precision,
        threads=threads_per_engine(settings),
    )


def _baker_litert(settings: Settings) -> Engine:
    from tts_server.engines.baker.litert import BakerLiteRTEngine

    return BakerLiteRTEngine(device=settings.device, threads=threads_per_engine(settings))


def threads_per_engine(settings: Settings) -> int:
    """Splits the cores between engine instances unless threads is set explicitly."""
    return settings.threads or max(1, (os.cpu_count() or 1) // settings.workers)


ENGINES: dict[str, Callable[[Settings], Engine]] = {"baker": _baker, "baker-litert": _baker_litert}


def create_engines(settings: Settings) -> list[Engine]:
    return [create_engine(settings) for _ in range(settings.workers)]


def create_engine(settings: Settings) -> Engine:
    try:
        factory = ENGINES[settings.engine]
    except KeyError:
        raise EngineUnavailable(
            f"unknown engine {settings.engine!r}; available: {', '.join(sorted(ENGINES))}"
        ) from None
    return factory(settings)
