"""Request and response models shared by the routes, the tests and the benchmark client."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AudioFormat = Literal["wav", "pcm", "mp3", "flac", "opus", "aac"]


class TTSRequest(BaseModel):
    """Native synthesis request. Prosody values are multipliers of the trained voice (1.0 = as trained)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(
        ..., min_length=1, description="Text to speak; Chinese numbers, dates and money are read out"
    )
    voice: str | None = Field(
        None, description="Voice id from GET /v1/voices (default: the engine's first voice)"
    )
    emotion: str = Field("neutral", description="Emotion preset from GET /v1/models")
    speed: float = Field(1.0, ge=0.25, le=4.0, description="Speaking rate multiplier")
    pitch: float = Field(1.0, ge=0.5, le=2.0, description="Pitch multiplier")
    energy: float = Field(1.0, ge=0.5, le=2.0, description="Loudness/energy multiplier")
    format: AudioFormat = Field("wav", description="Container/codec of the response body")
    sample_rate: int | None = Field(
        None, ge=8000, le=48000, description="Output rate in Hz (default: the model's)"
    )
    stream: bool = Field(False, description="Send audio sentence by sentence as it is synthesized")


class VoiceRef(BaseModel):
    id: str


class SpeechRequest(BaseModel):
    """OpenAI `POST /v1/audio/speech`, plus the `emotion` and `sample_rate` extensions."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(..., min_length=1, description="tts-1, tts-1-hd or a model id from GET /v1/models")
    input: str = Field(..., min_length=1, max_length=4096)
    voice: str | VoiceRef
    response_format: AudioFormat = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)
    instructions: str | None = Field(None, max_length=4096, description="Mapped onto an emotion preset")
    stream_format: Literal["audio", "sse"] = "audio"
    emotion: str | None = Field(None, description="Extension: an emotion preset, overrides instructions")
    sample_rate: int | None = Field(None, ge=8000, le=48000, description="Extension; pcm defaults to 24000")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    owned_by: str = "voicefleet"
    engine: str
    runtime: str
    device: str
    precision: str
    sample_rate: int
    languages: list[str]
    voices: list[str]
    emotions: list[str]
    capabilities: dict[str, bool | int | list[str]]
    aliases: list[str]
    details: dict[str, str] = Field(
        default_factory=dict,
        description="Engine specifics: threads, batch_mode, gpu, and device_fallback when auto chose CPU "
        "because a visible GPU failed",
    )


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class VoiceCard(BaseModel):
    id: str
    name: str
    language: str
    gender: str
    description: str
    engine: str
    model: str
    kind: Literal["builtin", "cloned"] = "builtin"
    emotions: list[str]
    aliases: list[str]


class VoiceList(BaseModel):
    voices: list[VoiceCard]
