"""The embedded voice itself, synthesizing real audio on CPU."""

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from tests.quality import assert_speech, syllables
from tts_server.engines.baker.assets import load_assets
from tts_server.engines.baker.litert import SAMPLE_RATE, BakerLiteRTEngine
from tts_server.engines.baker.tflite_patch import FLEX_RANDOM_UNIFORM, replace_flex_random_uniform
from tts_server.engines.base import Engine, EngineUnavailable, InvalidInput, Segment
from tts_server.text import normalize

TEXT = "欢迎使用语音合成服务，今天天气很好。"


@pytest.fixture(scope="module")
def engine() -> BakerLiteRTEngine:
    eng = BakerLiteRTEngine(threads=2)
    eng.warm_up()
    return eng


def test_patch_removes_both_flex_ops() -> None:
    original = load_assets().acoustic.read_bytes()
    patched, count = replace_flex_random_uniform(original)
    assert count == 2
    model = schema.Model.GetRootAsModel(patched, 0)
    custom = [model.OperatorCodes(i).CustomCode() for i in range(model.OperatorCodesLength())]
    assert FLEX_RANDOM_UNIFORM not in custom


def test_implements_engine_protocol(engine: BakerLiteRTEngine) -> None:
    assert isinstance(engine, Engine)
    assert engine.info.sample_rate == SAMPLE_RATE
    assert {"neutral", "happy", "sad", "angry", "surprised"} <= set(engine.info.emotions)


def test_speech_quality(engine: BakerLiteRTEngine) -> None:
    wave = engine.synthesize([Segment(TEXT, "baker")])[0]
    assert wave.dtype == np.float32
    assert_speech(wave, SAMPLE_RATE, syllables(TEXT))


def test_acronyms_add_audio(engine: BakerLiteRTEngine) -> None:
    plain = engine.synthesize([Segment(normalize("使用率达到百分之九十。"), "baker")])[0]
    with_gpu = engine.synthesize([Segment(normalize("GPU使用率达到百分之九十。"), "baker")])[0]
    # G P U are three more syllables: about half a second or more of speech.
    assert with_gpu.size - plain.size > 0.4 * SAMPLE_RATE


@pytest.mark.parametrize(("speed", "ratio"), [(2.0, 0.5), (0.5, 2.0), (4.0, 0.25)])
def test_speed_changes_duration(engine: BakerLiteRTEngine, speed: float, ratio: float) -> None:
    base = engine.synthesize([Segment(TEXT, "baker")])[0].size
    scaled = engine.synthesize([Segment(TEXT, "baker", speed=speed)])[0].size
    assert scaled / base == pytest.approx(ratio, rel=0.2)


def test_emotions_change_prosody(engine: BakerLiteRTEngine) -> None:
    neutral = engine.synthesize([Segment(TEXT, "baker")])[0]
    sad = engine.synthesize([Segment(TEXT, "baker", emotion="sad")])[0]
    angry = engine.synthesize([Segment(TEXT, "baker", emotion="angry")])[0]
    assert sad.size > neutral.size * 1.1  # slower
    assert np.sqrt(np.mean(angry**2)) > 1.2 * np.sqrt(np.mean(neutral**2))  # louder


def test_nothing_speakable_is_invalid_input(engine: BakerLiteRTEngine) -> None:
    with pytest.raises(InvalidInput):
        engine.synthesize([Segment("😀", "baker")])


def test_cuda_is_refused_clearly() -> None:
    with pytest.raises(EngineUnavailable, match="CPU only"):
        BakerLiteRTEngine(device="cuda")
