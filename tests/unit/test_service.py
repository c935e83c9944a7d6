"""SynthesisService.plan carries OpenAI `instructions` to every segment (prompt engines read them)."""

from __future__ import annotations

import pytest

from tts_server.engines.base import Capabilities, EngineInfo, Voice
from tts_server.service import SynthesisService, emotion_from_instructions
from tts_server.settings import Settings

INFO = EngineInfo(
    name="emotivoice",
    model_id="emotivoice",
    runtime="torch",
    device="cpu",
    precision="fp32",
    sample_rate=16000,
    languages=("zh", "en"),
    voices=(Voice("8051", "8051", "zh", ""),),
    emotions=("neutral", "happy", "sad"),
    capabilities=Capabilities(batching=False, max_batch_size=1, streaming=True, cloning=False),
)


@pytest.mark.parametrize("instructions", [None, "用温柔的语气", "Speak like a sports commentator."])
def test_plan_carries_instructions_to_every_segment(instructions: str | None) -> None:
    service = SynthesisService(INFO, scheduler=None, settings=Settings())
    plan = service.plan("今天天气很好。我们出去走走吧！", "8051", "neutral", 1.0, 1.0, 1.0, instructions)
    assert len(plan.segments) == 2
    assert {segment.instructions for segment in plan.segments} == {instructions}


def test_plan_without_instructions_keeps_the_old_call_shape() -> None:
    service = SynthesisService(INFO, scheduler=None, settings=Settings())
    plan = service.plan("你好。", "8051", "happy", 1.0, 1.0, 1.0)
    assert plan.segments[0].instructions is None
    assert plan.segments[0].emotion == "happy"


@pytest.mark.parametrize(
    ("instructions", "emotion"),
    [("Sound cheerful", "happy"), ("用悲伤的语气", "sad"), ("angry", "neutral"), (None, "neutral")],
)
def test_instructions_still_pick_an_emotion_for_engines_without_prompts(instructions, emotion) -> None:
    assert emotion_from_instructions(instructions, INFO.emotions) == emotion
