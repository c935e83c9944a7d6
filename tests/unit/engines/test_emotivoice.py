"""EmotiVoice: prompt mapping, label parsing and the refusal paths (its model cannot load here)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from tts_server.engines.base import EngineUnavailable
from tts_server.engines.emotivoice.engine import EmotiVoiceEngine, has_speech, phoneme_ids
from tts_server.engines.emotivoice.layout import (
    CHECKOUT_FILES,
    PACKAGES,
    WEIGHT_FILES,
    missing_files,
    missing_packages,
)
from tts_server.engines.emotivoice.prompts import (
    EMOTION_PROMPTS,
    MAX_PROMPT_CHARS,
    count_labels,
    parse_labels,
    speaker_ids,
    style_prompt,
)
from tts_server.engines.emotivoice.upstream import import_from_checkout, style_config

# The label file upstream trained the style encoder on (data/youdao/text/emotion at the pinned commit).
UPSTREAM_EMOTIONS = ["普通", "生气", "开心", "惊讶", "悲伤", "厌恶", "恐惧"]


@pytest.mark.parametrize(
    ("emotion", "instructions", "expected"),
    [
        ("neutral", None, "普通"),
        ("happy", None, "开心"),
        ("angry", None, "生气"),
        ("surprised", None, "惊讶"),
        ("sad", None, "悲伤"),
        ("disgusted", None, "厌恶"),
        ("fearful", None, "恐惧"),
        ("happy", "  用 \n 温柔的语气  ", "用 温柔的语气"),
        ("neutral", "Speak cheerfully, like a radio host.", "Speak cheerfully, like a radio host."),
        ("sad", "   ", "悲伤"),
        ("sad", "", "悲伤"),
    ],
)
def test_style_prompt(emotion: str, instructions: str | None, expected: str) -> None:
    assert style_prompt(emotion, instructions) == expected


def test_long_instructions_are_cut() -> None:
    assert style_prompt("neutral", "开心" * 500) == ("开心" * 500)[:MAX_PROMPT_CHARS]


def test_unknown_emotion_is_refused() -> None:
    with pytest.raises(ValueError):
        style_prompt("calm")


def test_every_prompt_is_a_trained_label() -> None:
    assert sorted(EMOTION_PROMPTS.values()) == sorted(UPSTREAM_EMOTIONS)


@pytest.mark.parametrize(
    ("text", "labels", "speakers", "count"),
    [
        ("8051\n11614\n9017\n", {"8051": 0, "11614": 1, "9017": 2}, ("8051", "11614", "9017"), 3),
        ("8051\n11614", {"8051": 0, "11614": 1}, ("8051", "11614"), 2),
        ("a\n\nb\n", {"a": 0, "": 1, "b": 2}, ("a", "b"), 3),  # blank lines keep their index
        ("a\nb\na\n", {"a": 2, "b": 1}, ("a", "b"), 3),  # a repeat keeps its last line, as upstream
        (" 8051 \r\n92\r\n", {"8051": 0, "92": 1}, ("8051", "92"), 2),
        ("", {}, (), 0),
    ],
)
def test_label_files(text: str, labels: dict[str, int], speakers: tuple[str, ...], count: int) -> None:
    assert parse_labels(text) == labels
    assert speaker_ids(text) == speakers
    assert count_labels(text) == count


TOKENS = {"<sos/eos>": 0, "sp": 1, "n": 2, "i3": 3, "h": 4, "ao3": 5, "cn_eng_sp": 6}


@pytest.mark.parametrize(
    ("phonemes", "ids", "unknown", "speech"),
    [
        ("<sos/eos> n i3 h ao3 <sos/eos>", [0, 2, 3, 4, 5, 0], [], True),
        ("<sos/eos> n i3 sp [HH] ao3 <sos/eos>", [0, 2, 3, 1, 5, 0], ["[HH]"], True),
        ("<sos/eos> <sos/eos>", [0, 0], [], False),
        ("<sos/eos> cn_eng_sp sp <sos/eos>", [0, 6, 1, 0], [], False),
        ("", [], [], False),
    ],
)
def test_phoneme_ids(phonemes: str, ids: list[int], unknown: list[str], speech: bool) -> None:
    assert phoneme_ids(phonemes, TOKENS) == (ids, unknown)
    assert has_speech(phonemes) is speech


def make_checkout(root: Path, files: tuple[str, ...] = CHECKOUT_FILES) -> Path:
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("\n".join(UPSTREAM_EMOTIONS) + "\n", encoding="utf-8")
    return root


def make_weights(root: Path, bert_weights: str | None = "pytorch_model.bin") -> Path:
    for name in WEIGHT_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    if bert_weights:
        (root / "WangZeJun/simbert-base-chinese" / bert_weights).write_bytes(b"x")
    return root


def test_complete_layout_is_not_missing_anything(tmp_path: Path) -> None:
    checkout = make_checkout(tmp_path / "EmotiVoice")
    assert missing_files(checkout, make_weights(tmp_path / "w1")) == []
    assert missing_files(checkout, make_weights(tmp_path / "w2", "model.safetensors")) == []


def test_missing_layout_names_every_file(tmp_path: Path) -> None:
    checkout = make_checkout(tmp_path / "EmotiVoice", CHECKOUT_FILES[1:])
    weights = make_weights(tmp_path / "w", bert_weights=None)
    (weights / WEIGHT_FILES[1]).unlink()
    missing = missing_files(checkout, weights)
    assert missing == [
        f"checkout files in {checkout}: {CHECKOUT_FILES[0]}",
        f"weight files in {weights}: {WEIGHT_FILES[1]}, "
        "WangZeJun/simbert-base-chinese/pytorch_model.bin or model.safetensors",
    ]


def test_unset_paths_name_the_settings() -> None:
    missing = missing_files(None, None)
    assert "TTS_EMOTIVOICE_CHECKOUT" in missing[0]
    assert "TTS_EMOTIVOICE_WEIGHTS" in missing[1]


def test_missing_packages_in_order() -> None:
    assert missing_packages(lambda name: name not in ("torch", "yacs")) == ["torch", "yacs"]
    assert missing_packages(lambda name: True) == []
    assert missing_packages(lambda name: False) == list(PACKAGES)


def test_constructor_refuses_here_with_one_message(tmp_path: Path) -> None:
    # This venv has no torch (torch is an extra for GPU images), and the checkout is empty.
    with pytest.raises(EngineUnavailable) as caught:
        EmotiVoiceEngine(tmp_path / "EmotiVoice", tmp_path / "weights")
    message = str(caught.value)
    assert message.startswith("engine 'emotivoice' cannot run here; it needs: ")
    assert f"packages not installed: {', '.join(missing_packages())}" in message
    assert "g_00140000" in message
    assert "frontend.py" in message


def test_fp16_is_refused_before_loading(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("tts_server.engines.emotivoice.engine.missing_packages", lambda: [])
    checkout, weights = make_checkout(tmp_path / "EmotiVoice"), make_weights(tmp_path / "w")
    with pytest.raises(EngineUnavailable, match="fp16 parity"):
        EmotiVoiceEngine(checkout, weights, precision="fp16")


def test_style_config_counts_upstream_labels(tmp_path: Path) -> None:
    checkout = make_checkout(tmp_path / "EmotiVoice")
    (checkout / "data/youdao/text/speed").write_text("普通\n快\n慢\n", encoding="utf-8")
    config = style_config(checkout, tmp_path / "w")
    assert config.emotion_n_labels == 7
    assert config.speed_n_labels == 3
    assert config.bert_path == str(tmp_path / "w" / "WangZeJun/simbert-base-chinese")
    assert (config.bert_hidden_size, config.style_dim) == (768, 128)


def test_checkout_goes_first_on_sys_path_without_chdir(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = Path.cwd()
    import_from_checkout(tmp_path)
    assert sys.path[0] == str(tmp_path.resolve())
    assert Path.cwd() == before


def test_clashing_module_is_refused(tmp_path: Path, monkeypatch) -> None:
    other = types.ModuleType("frontend")
    other.__file__ = "/elsewhere/frontend.py"
    monkeypatch.setitem(sys.modules, "frontend", other)
    with pytest.raises(EngineUnavailable, match="'frontend' is already imported from /elsewhere"):
        import_from_checkout(tmp_path)


def test_namespace_package_from_the_checkout_is_not_a_clash(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "models").mkdir()
    namespace = types.ModuleType("models")
    namespace.__path__ = [str(tmp_path / "models")]  # no __file__, like upstream's models/ (no __init__.py)
    monkeypatch.setitem(sys.modules, "models", namespace)
    monkeypatch.setattr(sys, "path", list(sys.path))
    import_from_checkout(tmp_path)
    namespace.__path__ = ["/elsewhere/models"]
    with pytest.raises(EngineUnavailable, match="/elsewhere/models"):
        import_from_checkout(tmp_path)
