"""The interface every engine implements, and the errors engines raise.

One worker thread owns an engine instance, so implementations need not be thread-safe; they must
never block forever and must raise EngineError (not return garbage) when synthesis fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Voice:
    id: str
    name: str
    language: str
    gender: str
    description: str = ""


@dataclass(frozen=True)
class Capabilities:
    batching: bool
    max_batch_size: int
    streaming: bool
    cloning: bool
    controls: tuple[str, ...] = ("speed", "pitch", "energy")


@dataclass(frozen=True)
class Segment:
    """One sentence to synthesize, already normalized; prosody values are multipliers (1.0 = as trained)."""

    text: str
    voice: str
    emotion: str = "neutral"
    speed: float = 1.0
    pitch: float = 1.0
    energy: float = 1.0
    # Free-text style instructions (OpenAI `instructions`) for engines that take a prompt (EmotiVoice).
    instructions: str | None = None


@dataclass(frozen=True)
class EngineInfo:
    name: str
    model_id: str
    runtime: str
    device: str
    precision: str
    sample_rate: int
    languages: tuple[str, ...]
    voices: tuple[Voice, ...]
    emotions: tuple[str, ...]
    capabilities: Capabilities
    extra: dict[str, str] = field(default_factory=dict)

    def voice(self, voice_id: str) -> Voice | None:
        return next((v for v in self.voices if v.id == voice_id), None)


class EngineError(RuntimeError):
    """Synthesis failed inside the engine; kind is a bounded label for metrics (runtime, cuda_oom, ...)."""

    def __init__(self, message: str, kind: str = "runtime") -> None:
        super().__init__(message)
        self.kind = kind


class EngineUnavailable(RuntimeError):
    """The engine cannot run here (missing package, files, device); the message names what is missing."""


class InvalidInput(ValueError):
    """Text the engine cannot voice at all (nothing speakable left after the frontend)."""


@runtime_checkable
class Engine(Protocol):
    info: EngineInfo

    def warm_up(self) -> None:
        """Run real synthesis through every stage so the first request pays no compile/allocation cost."""

    def synthesize(self, batch: Sequence[Segment]) -> list[np.ndarray]:
        """Float32 mono waveforms at info.sample_rate, one per segment, in order."""
        ...
