import pytest

from tts_server.engines.base import Capabilities, EngineInfo, EngineUnavailable, Voice
from tts_server.engines.registry import served_info

INFO = EngineInfo(
    "e", "e-1", "numpy", "cpu", "fp32", 16000, ("zh",),
    (Voice("a", "A", "zh", "female"), Voice("b", "B", "zh", "male"), Voice("c", "C", "en", "female")),
    ("neutral",), Capabilities(False, 1, True, False),
)  # fmt: skip


def test_no_list_serves_every_voice() -> None:
    assert served_info(INFO, []) is INFO


def test_listed_voices_are_the_catalogue_in_engine_order() -> None:
    assert [v.id for v in served_info(INFO, ["c", "a"]).voices] == ["a", "c"]


def test_unknown_listed_voice_refuses_to_start() -> None:
    with pytest.raises(EngineUnavailable, match="voices zz are not offered by engine 'e'"):
        served_info(INFO, ["a", "zz"])
