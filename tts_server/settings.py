"""One settings object for the server, read from TTS_* environment variables and CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tts_server.hub import cache_dir_name

OPENAI_VOICE_NAMES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "nova",
    "onyx",
    "sage",
    "shimmer",
    "verse",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TTS_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address to bind; 0.0.0.0 inside a pod")
    port: int = Field(8080, ge=1, le=65535)
    engine: str = Field("baker", description="Engine name from the registry")
    device: Literal["auto", "cuda", "cpu"] = "auto"
    precision: Literal["auto", "fp32", "fp16", "bf16", "int8"] = "auto"
    workers: int = Field(1, ge=1, le=64, description="Engine instances, each owned by one worker thread")
    threads: int | None = Field(None, ge=1, description="CPU threads per engine (default: cores / workers)")
    max_queue: int = Field(32, ge=0, description="Requests that may wait; more get 429")
    batch_size: int = Field(
        8, ge=1, description="Most segments per engine call (engines without batching use 1)"
    )
    batch_wait_ms: float = Field(5.0, ge=0, description="How long an idle worker waits to fill a batch")
    batch_mode: Literal["auto", "padded", "sequential"] = Field(
        "auto",
        description="baker: padded runs a batch as one tensor, sequential item by item; "
        "auto is padded on CUDA, sequential on CPU",
    )
    max_text_length: int = Field(4096, ge=1, description="Characters accepted by /tts")
    max_body_bytes: int = Field(65536, ge=1024, description="Larger request bodies get 413")
    request_timeout_s: float = Field(
        30.0, gt=0, description="Deadline for a request to leave the queue (else 504)"
    )
    engine_timeout_s: float = Field(
        120.0, gt=0, description="An engine call longer than this marks the pod not live"
    )
    drain_timeout_s: float = Field(25.0, ge=0, description="After SIGTERM, how long accepted work may take")
    sentence_gap_ms: int = Field(120, ge=0, le=2000, description="Silence between sentences")
    api_key: SecretStr | None = Field(
        None, description="Bearer key for synthesis routes; health and metrics stay open"
    )
    voice_aliases: dict[str, str] = Field(
        default_factory=dict,
        description="Extra voice names mapped to engine voices (OpenAI's names map to the default)",
    )
    log_level: str = "info"
    # Engines whose models live outside the image (sambert-hifigan, emotivoice).
    model_dir: Path | None = Field(
        None, description="Sambert: local ModelScope model directory (holds configuration.json)"
    )
    model_work_dir: Path | None = Field(
        None, description="Where a read-only model directory is copied to run (default: a temp directory)"
    )
    emotivoice_checkout: Path | None = Field(
        None, description="EmotiVoice: checkout of the upstream repository at the pinned commit"
    )
    emotivoice_weights: Path | None = Field(
        None, description="EmotiVoice: directory laid out like the checkout's outputs/ (see README)"
    )
    # Where the model comes from, as the operator's TTSService spec.model says it.
    model_source: Literal["builtin", "huggingface", "modelscope", "local"] = "builtin"
    model_id: str | None = Field(None, description="Hub model id; with a hub source it names the cached copy")
    model_revision: str | None = Field(None, description="Hub revision the cached copy was fetched at")
    model_cache_dir: Path | None = Field(None, description="Where fetch-model puts hub models (<dir>/<id>)")
    voices: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Serve only these voices (comma-separated; empty: all)"
    )
    tier: str | None = Field(None, description="gpu or cpu, as the operator deploys it (a metrics label)")

    @field_validator("voices", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    def resolved_model_dir(self) -> Path | None:
        """The model directory to load: explicit, or the hub model's place in the cache."""
        if self.model_dir is not None:
            return self.model_dir
        if self.model_source in ("huggingface", "modelscope") and self.model_id and self.model_cache_dir:
            return self.model_cache_dir / cache_dir_name(self.model_id)
        return None
