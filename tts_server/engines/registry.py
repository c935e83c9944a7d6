"""Engines by name. Imports are lazy so a server only loads the libraries of the engine it runs."""

from __future__ import annotations

import os
from collections.abc import Callable

from tts_server.engines.base import Engine, EngineUnavailable
from tts_server.settings import Settings


def _baker(settings: Settings) -> Engine:
    from tts_server.engines.baker.litert import BakerLiteRTEngine

    return BakerLiteRTEngine(device=settings.device, threads=threads_per_engine(settings))


def _sambert(settings: Settings) -> Engine:
    from tts_server.engines.sambert.engine import SambertEngine

    return SambertEngine(settings.model_dir, settings.device, settings.precision, settings.model_work_dir)


def _emotivoice(settings: Settings) -> Engine:
    from tts_server.engines.emotivoice.engine import EmotiVoiceEngine

    return EmotiVoiceEngine(
        settings.emotivoice_checkout,
        settings.emotivoice_weights,
        settings.device,
        settings.precision,
        threads_per_engine(settings),
    )


def threads_per_engine(settings: Settings) -> int:
    """Splits the cores between engine instances unless threads is set explicitly."""
    return settings.threads or max(1, (os.cpu_count() or 1) // settings.workers)


ENGINES: dict[str, Callable[[Settings], Engine]] = {
    "baker": _baker,
    "sambert-hifigan": _sambert,
    "emotivoice": _emotivoice,
}


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
