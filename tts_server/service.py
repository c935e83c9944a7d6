"""Orchestrates one synthesis: text plan -> scheduler job -> audio, for the routes to serve."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from starlette.requests import Request

from tts_server.api.errors import ApiError
from tts_server.audio.resample import resample
from tts_server.engines.base import EngineError, EngineInfo, InvalidInput, Segment
from tts_server.scheduler import Chunk, Job, QueueTimeout, Rejected, Scheduler
from tts_server.settings import OPENAI_VOICE_NAMES, Settings
from tts_server.text import normalize, split_sentences

T = TypeVar("T")
OPENAI_MODEL_ALIASES = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")

_INSTRUCTION_EMOTIONS = (
    ("happy", r"happy|cheer|joy|excit|glad|开心|高兴|快乐|愉快|兴奋"),
    ("sad", r"sad|sorrow|unhappy|melanchol|悲伤|难过|伤心|忧伤"),
    ("angry", r"angry|anger|furious|mad\b|生气|愤怒|恼火"),
    ("surprised", r"surpris|astonish|amaz|惊讶|吃惊|惊奇"),
    ("fearful", r"fear|scared|afraid|nervous|害怕|恐惧|紧张"),
    ("calm", r"calm|sooth|gentle|relax|soft|平静|温柔|舒缓|轻柔"),
)


def emotion_from_instructions(instructions: str | None, emotions: tuple[str, ...]) -> str:
    """First emotion preset whose keywords appear in OpenAI-style free-text instructions."""
    if instructions:
        lowered = instructions.lower()
        for emotion, pattern in _INSTRUCTION_EMOTIONS:
            if emotion in emotions and re.search(pattern, lowered):
                return emotion
    return "neutral"


@dataclass(frozen=True)
class Plan:
    segments: list[Segment]
    characters: int


class SynthesisService:
    def __init__(self, info: EngineInfo, scheduler: Scheduler, settings: Settings) -> None:
        self.info = info
        self.scheduler = scheduler
        self.settings = settings
        default = info.voices[0].id
        self.voice_aliases = {name: default for name in OPENAI_VOICE_NAMES} | dict(settings.voice_aliases)

    # --- validation -------------------------------------------------------------------------
    def resolve_model(self, model: str) -> None:
        if model not in (self.info.model_id, self.info.name, *OPENAI_MODEL_ALIASES):
            raise ApiError(400, "model_not_found", f"model {model!r} not found; see GET /v1/models")

    def resolve_voice(self, voice: str | None) -> str:
        if voice is None:
            return self.info.voices[0].id
        if self.info.voice(voice) is not None:
            return voice
        if voice in self.voice_aliases and self.info.voice(self.voice_aliases[voice]):
            return self.voice_aliases[voice]
        raise ApiError(400, "voice_not_found", f"voice {voice!r} not found; see GET /v1/voices")

    def check_emotion(self, emotion: str) -> str:
        if emotion not in self.info.emotions:
            known = ", ".join(self.info.emotions)
            raise ApiError(
                400, "emotion_not_supported", f"emotion {emotion!r} not supported; use one of: {known}"
            )
        return emotion

    def plan(
        self,
        text: str,
        voice: str,
        emotion: str,
        speed: float,
        pitch: float,
        energy: float,
        instructions: str | None = None,
    ) -> Plan:
        if not text.strip():
            raise ApiError(400, "empty_input", "text is empty")
        if len(text) > self.settings.max_text_length:
            raise ApiError(
                400,
                "input_too_long",
                f"text has {len(text)} characters; the limit is {self.settings.max_text_length}",
            )
        sentences = split_sentences(normalize(text))
        if not sentences:
            raise ApiError(400, "nothing_to_speak", "text has no speakable characters")
        segments = [Segment(s, voice, emotion, speed, pitch, energy, instructions) for s in sentences]
        return Plan(segments, sum(len(s) for s in sentences))

    # --- running ----------------------------------------------------------------------------
    def submit(self, plan: Plan) -> Job:
        try:
            return self.scheduler.submit(plan.segments, self.settings.request_timeout_s)
        except Rejected as exc:
            raise ApiError(exc.status, exc.code, str(exc), exc.retry_after) from exc

    def _wait_budget(self, job: Job) -> float:
        # Queue deadline plus one engine budget: only a hung worker can exceed it.
        return self.settings.request_timeout_s + self.settings.engine_timeout_s

    @staticmethod
    def _raise_failure(error: Exception) -> None:
        if isinstance(error, QueueTimeout):
            raise ApiError(504, "queue_timeout", f"request deadline passed in the queue ({error})")
        if isinstance(error, InvalidInput):
            raise ApiError(400, "nothing_to_speak", str(error))
        if isinstance(error, EngineError) and error.kind == "cuda_oom":
            raise ApiError(503, "cuda_oom", "GPU out of memory; retry", retry_after=2)
        raise ApiError(500, "engine_error", f"synthesis failed: {error}")

    async def chunks(self, job: Job) -> AsyncIterator[np.ndarray]:
        """Per-sentence waveforms in order, each after the first prefixed with the sentence gap."""
        gap = np.zeros(int(self.info.sample_rate * self.settings.sentence_gap_ms / 1000), np.float32)
        try:
            while True:
                try:
                    event = await asyncio.wait_for(job.events.get(), self._wait_budget(job))
                except TimeoutError as exc:
                    raise ApiError(504, "engine_timeout", "the engine did not answer in time") from exc
                if not isinstance(event, Chunk):
                    self._raise_failure(event.error)
                    return
                yield event.wave if event.index == 0 else np.concatenate([gap, event.wave])
                if event.last:
                    return
        finally:
            if not job.done:
                job.cancel()

    async def collect(self, job: Job, request: Request) -> np.ndarray:
        """The whole waveform; abandons the job as soon as the client disconnects."""
        parts: list[np.ndarray] = []

        async def gather() -> None:
            async for wave in self.chunks(job):
                parts.append(wave)

        await unless_disconnected(gather(), request)
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def output_rate(self, requested: int | None) -> int:
        return requested or self.info.sample_rate

    def to_rate(self, wave: np.ndarray, rate: int) -> np.ndarray:
        return resample(wave, self.info.sample_rate, rate)


async def unless_disconnected(work: Coroutine[Any, Any, T], request: Request) -> T:
    """Awaits work unless the client leaves first; then cancels it (its cleanup cancels the job)."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(wait_for_disconnect(request))
    try:
        done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if task not in done:
        task.cancel()
        raise ApiError(499, "client_closed_request", "client disconnected")
    return task.result()


async def wait_for_disconnect(request: Request) -> None:
    """Returns when the client closes the connection (the body was already read by then)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
