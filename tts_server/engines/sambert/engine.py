"""Sambert-HifiGAN through ModelScope's text-to-speech pipeline, loaded from a local model directory.

The pipeline has no batching (a list input runs one by one) and no fp16; its decoder is an
autoregressive Python loop. Each voice's model is guarded by a process-wide lock because KAN-TTS and the
closed-source ttsfrd frontend are not documented as thread-safe, and several worker threads may each hold
an engine instance.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from collections.abc import MutableMapping, Sequence
from pathlib import Path

import numpy as np

from tts_server.audio.post import finish_prosody
from tts_server.engines.base import (
    Capabilities,
    EngineError,
    EngineInfo,
    EngineUnavailable,
    InvalidInput,
    Segment,
    Voice,
)
from tts_server.engines.sambert.model_dir import (
    model_sample_rate,
    parse_voices,
    writable_model_dir,
)
from tts_server.engines.sambert.output import wav_to_rate
from tts_server.engines.sambert.requirements import check_runnable
from tts_server.engines.sambert.ssml import EMOTION_CATEGORIES, build_ssml

log = logging.getLogger(__name__)

ENGINE_NAME = "sambert-hifigan"
WARM_UP_TEXT = "欢迎使用语音合成服务。"
_VOICE_LOCKS: dict[str, threading.Lock] = {}
_VOICE_LOCKS_GUARD = threading.Lock()


def voice_lock(voice: str) -> threading.Lock:
    with _VOICE_LOCKS_GUARD:
        return _VOICE_LOCKS.setdefault(voice, threading.Lock())


def hide_gpus_for_cpu(device: str, environ: MutableMapping[str, str] = os.environ) -> None:
    """KAN-TTS picks CUDA whenever torch sees it; hiding the GPUs is its only CPU switch.

    Must run before torch initialises CUDA, so the engine calls it before importing modelscope.
    """
    if device == "cpu":
        environ["CUDA_VISIBLE_DEVICES"] = ""
    for name in ("WORLD_SIZE", "RANK"):
        # KAN-TTS switches to torch.distributed when these are set (e.g. by a training launcher).
        if name in environ:
            log.warning("sambert: ignoring %s=%s from the environment", name, environ.pop(name))


class SambertEngine:
    def __init__(
        self,
        model_dir: Path | None,
        device: str = "auto",
        precision: str = "auto",
        work_dir: Path | None = None,
    ) -> None:
        model_dir = check_runnable(model_dir)
        if precision not in ("auto", "fp32"):
            raise EngineUnavailable(f"engine {ENGINE_NAME!r} runs in fp32 only; precision={precision!r}")
        if device == "cpu" and "torch" in sys.modules:
            log.warning("sambert: torch was imported before the engine; CUDA may already be visible")
        hide_gpus_for_cpu(device)
        import torch
        from modelscope.pipelines import pipeline
        from modelscope.utils.constant import Tasks

        if device == "cuda" and not torch.cuda.is_available():
            raise EngineUnavailable(f"engine {ENGINE_NAME!r}: device=cuda but torch sees no CUDA device")
        run_dir = writable_model_dir(model_dir, work_dir or Path(tempfile.gettempdir()) / "voicefleet-models")
        voices = parse_voices((run_dir / "voices" / "voices.json").read_text(encoding="utf-8"))
        self._rate = model_sample_rate((run_dir / "configuration.json").read_text(encoding="utf-8"))
        # An absolute local path: a hub id here would make modelscope call the hub.
        # modelscope's own device switch ("gpu" falls back to CPU when CUDA is absent); KAN-TTS still
        # checks torch.cuda itself, which is why GPUs are also hidden for device=cpu.
        self._pipeline = pipeline(
            task=Tasks.text_to_speech, model=str(run_dir), device="cpu" if device == "cpu" else "gpu"
        )
        used = "cuda" if torch.cuda.is_available() else "cpu"
        self.info = EngineInfo(
            name=ENGINE_NAME,
            model_id=ENGINE_NAME,
            runtime="modelscope",
            device=used,
            precision="fp32",
            sample_rate=self._rate,
            languages=("zh",),
            voices=tuple(Voice(v, v, "zh", "", "Sambert-HifiGAN voice") for v in voices),
            emotions=tuple(EMOTION_CATEGORIES),
            capabilities=Capabilities(
                batching=False, max_batch_size=1, streaming=True, cloning=False, controls=("speed", "energy")
            ),
            extra={"model_dir": str(run_dir)},
        )

    def synthesize_one(self, segment: Segment) -> np.ndarray:
        if self.info.voice(segment.voice) is None:
            raise InvalidInput(f"voice {segment.voice!r} is not in this model")
        ssml = build_ssml(segment.text, segment.emotion)
        try:
            with voice_lock(segment.voice):
                output = self._pipeline(input=ssml, voice=segment.voice)
        except RuntimeError as exc:
            kind = "cuda_oom" if "out of memory" in str(exc) else "runtime"
            raise EngineError(f"sambert synthesis failed: {exc}", kind) from exc
        wave = wav_to_rate(output["output_wav"], self._rate)
        if wave.size == 0:
            raise InvalidInput(f"nothing speakable in {segment.text!r}")
        # The model has no speed or energy input: both are applied to its output.
        return finish_prosody(wave, self._rate, segment.speed, segment.energy)

    def synthesize(self, batch: Sequence[Segment]) -> list[np.ndarray]:
        return [self.synthesize_one(segment) for segment in batch]

    def warm_up(self) -> None:
        # KAN-TTS loads each voice's acoustic model and vocoder on that voice's first call: warm every
        # voice, or the first request for the second voice would pay the load.
        for voice in self.info.voices:
            wave = self.synthesize_one(Segment(WARM_UP_TEXT, voice.id))
            if wave.size < self._rate // 4 or float(np.abs(wave).max()) < 0.01:
                raise EngineError(f"sambert warm-up produced no audible audio for voice {voice.id!r}")
