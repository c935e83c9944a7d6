"""EmotiVoice behind the engine interface: one utterance per call, fp32, prompt from emotion/instructions.

Batching stays off: upstream has no batch API, and a padded batch of two runs but padding leaks into
the output (measured, see shared notes). fp16 stays off until its parity with fp32 is shown on a GPU.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
from tts_server.engines.devices import choose_device
from tts_server.engines.emotivoice.layout import missing_files, missing_packages, refusal_message
from tts_server.engines.emotivoice.prompts import EMOTION_PROMPTS, style_prompt
from tts_server.engines.emotivoice.upstream import SAMPLE_RATE, Loaded, load

log = logging.getLogger(__name__)
ENGINE_NAME = "emotivoice"
WARM_UP_TEXT = "欢迎使用语音合成服务。"
SPEAKER_NOTE = "EmotiVoice speaker; speaks Mandarin and English"
FRONTEND_MARKERS = frozenset({"<sos/eos>", "sp", "cn_eng_sp", "eng_cn_sp"})


def phoneme_ids(phonemes: str, token2id: dict[str, int]) -> tuple[list[int], list[str]]:
    """Ids of a frontend phoneme string, and the symbols the model has no token for (dropped)."""
    ids: list[int] = []
    unknown: list[str] = []
    for symbol in phonemes.split():
        if symbol in token2id:
            ids.append(token2id[symbol])
        else:
            unknown.append(symbol)
    return ids, unknown


def has_speech(phonemes: str) -> bool:
    return any(symbol not in FRONTEND_MARKERS for symbol in phonemes.split())


class EmotiVoiceEngine:
    def __init__(
        self,
        checkout: Path | None,
        weights: Path | None,
        device: str = "auto",
        precision: str = "auto",
        threads: int | None = None,
    ) -> None:
        packages = missing_packages()
        missing = [f"packages not installed: {', '.join(packages)}"] if packages else []
        missing += missing_files(checkout, weights)
        if missing or checkout is None or weights is None:
            raise EngineUnavailable(refusal_message(missing))
        if precision not in ("auto", "fp32"):
            raise EngineUnavailable(
                f"engine {ENGINE_NAME!r} runs in fp32: fp16 parity with fp32 has not been shown; "
                f"precision={precision!r}"
            )
        import torch

        choice = choose_device(device, ENGINE_NAME)
        used = choice.device
        if threads:
            # Process-wide in torch; every worker's engine asks for the same share, so they agree.
            torch.set_num_threads(threads)
        self._torch = torch
        self._device = torch.device(used)
        try:
            self._m: Loaded = load(checkout.resolve(), weights.resolve(), self._device)
        except (ImportError, LookupError, OSError) as exc:
            # LookupError: g2p_en's NLTK data (tagger, cmudict) is missing and could not be downloaded.
            raise EngineUnavailable(f"engine {ENGINE_NAME!r} could not load: {exc}") from exc
        speakers = [name for name in self._m.speaker2id if name]
        self.info = EngineInfo(
            name=ENGINE_NAME,
            model_id=ENGINE_NAME,
            runtime="torch",
            device=used,
            precision="fp32",
            sample_rate=SAMPLE_RATE,
            languages=("zh", "en"),
            voices=tuple(Voice(s, f"EmotiVoice {s}", "zh", "", SPEAKER_NOTE) for s in speakers),
            emotions=tuple(EMOTION_PROMPTS),
            capabilities=Capabilities(
                batching=False, max_batch_size=1, streaming=True, cloning=False, controls=("speed", "energy")
            ),
            extra={"speakers": str(len(speakers)), **choice.details()},
        )

    def _embedding(self, text: str) -> Any:
        """BERT pooled output (768-d) of a prompt or of the content, as upstream's get_style_embedding."""
        tokens = self._m.tokenizer([text], return_tensors="pt")
        output = self._m.style_encoder(
            input_ids=tokens["input_ids"].to(self._device),
            token_type_ids=tokens["token_type_ids"].to(self._device),
            attention_mask=tokens["attention_mask"].to(self._device),
        )
        return output["pooled_output"]

    def synthesize_one(self, segment: Segment) -> np.ndarray:
        torch = self._torch
        speaker = self._m.speaker2id.get(segment.voice)
        if speaker is None or not segment.voice:
            raise InvalidInput(f"speaker {segment.voice!r} is not in this model")
        phonemes = self._m.g2p_cn_en(segment.text, self._m.g2p, self._m.lexicon)
        ids, unknown = phoneme_ids(phonemes, self._m.token2id)
        if unknown:
            log.info("emotivoice: no token for %s in %r", " ".join(unknown), segment.text)
        if not has_speech(phonemes) or not ids:
            raise InvalidInput(f"nothing speakable in {segment.text!r}")
        prompt = style_prompt(segment.emotion, segment.instructions)
        try:
            with torch.inference_mode():
                output = self._m.generator(
                    inputs_ling=torch.tensor([ids], dtype=torch.long, device=self._device),
                    input_lengths=torch.tensor([len(ids)], device=self._device),
                    inputs_speaker=torch.tensor([speaker], device=self._device),
                    inputs_style_embedding=self._embedding(prompt),
                    inputs_content_embedding=self._embedding(segment.text),
                    alpha=1.0,
                )
        except torch.cuda.OutOfMemoryError as exc:
            raise EngineError(f"emotivoice ran out of GPU memory: {exc}", "cuda_oom") from exc
        except RuntimeError as exc:
            raise EngineError(f"emotivoice synthesis failed: {exc}") from exc
        wave = output["wav_predictions"].squeeze().float().cpu().numpy()
        wave = np.clip(wave, -1.0, 1.0).astype(np.float32)
        # Upstream time-stretches too (pyrubberband): its speed prompts barely change the tempo.
        return finish_prosody(wave, SAMPLE_RATE, segment.speed, segment.energy)

    def synthesize(self, batch: Sequence[Segment]) -> list[np.ndarray]:
        return [self.synthesize_one(segment) for segment in batch]

    def warm_up(self) -> None:
        wave = self.synthesize_one(Segment(WARM_UP_TEXT, self.info.voices[0].id))
        if wave.size < SAMPLE_RATE // 4:
            raise EngineError("emotivoice warm-up produced too little audio")
