"""Sambert-HifiGAN: the pure parts as tables, and the refusal exactly as this interpreter triggers it."""

from __future__ import annotations

import importlib.machinery
import io
import json
import sys
import wave
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from tts_server.engines.base import EngineUnavailable
from tts_server.engines.sambert.engine import SambertEngine, hide_gpus_for_cpu, voice_lock
from tts_server.engines.sambert.model_dir import (
    is_writable,
    model_sample_rate,
    parse_voices,
    writable_model_dir,
)
from tts_server.engines.sambert.output import decode_wav, wav_to_rate
from tts_server.engines.sambert.requirements import (
    FIND_LINKS_HINT,
    PackageState,
    missing_requirements,
    package_state,
)
from tts_server.engines.sambert.ssml import EMOTION_CATEGORIES, build_ssml, escape_text


@pytest.mark.parametrize(
    ("text", "emotion", "expected"),
    [
        ("你好", "neutral", "<speak>你好</speak>"),
        ("你好", "happy", '<speak><emotion category="happy" intensity="1.00">你好</emotion></speak>'),
        ("别怕", "fearful", '<speak><emotion category="fear" intensity="1.00">别怕</emotion></speak>'),
        (
            "真的？",
            "surprised",
            '<speak><emotion category="surprise" intensity="1.00">真的？</emotion></speak>',
        ),
        ("讨厌", "disgusted", '<speak><emotion category="hate" intensity="1.00">讨厌</emotion></speak>'),
        ("A&B <1>", "neutral", "<speak>A&amp;B &lt;1&gt;</speak>"),
    ],
)
def test_build_ssml(text: str, emotion: str, expected: str) -> None:
    assert build_ssml(text, emotion) == expected


@pytest.mark.parametrize(
    "text",
    [
        '</emotion><emotion category="angry" intensity="2.0">骂人',
        "</speak><speak>两段",
        "<!-- 注释 --> & <break time='5s'/>",
        "]]><![CDATA[x",
        "控制\x00字符\x1b在\x0b这里",
        "引号 \"双\" '单'",
    ],
)
@pytest.mark.parametrize("emotion", ["neutral", "sad"])
def test_user_text_cannot_inject_markup(text: str, emotion: str) -> None:
    root = ET.fromstring(build_ssml(text, emotion))
    # Whatever the text holds, the tree keeps its shape and the text comes back as plain text.
    elements = [el.tag for el in root.iter()]
    assert elements == (["speak"] if emotion == "neutral" else ["speak", "emotion"])
    spoken = "".join(root.itertext())
    assert spoken == "".join(ch for ch in text if ch not in "\x00\x1b\x0b")


def test_escape_drops_characters_xml_cannot_hold() -> None:
    assert escape_text("a\x00b\x08c\td\ne") == "abc\td\ne"


@pytest.mark.parametrize(
    ("emotion", "intensity"), [("calm", 1.0), ("joy", 1.0), ("happy", 0.0), ("happy", 3)]
)
def test_build_ssml_refuses(emotion: str, intensity: float) -> None:
    with pytest.raises(ValueError):
        build_ssml("你好", emotion, intensity)


def test_every_category_is_one_sambert_knows() -> None:
    assert set(EMOTION_CATEGORIES.values()) == {
        "neutral",
        "happy",
        "sad",
        "angry",
        "surprise",
        "fear",
        "hate",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"voices": ["zhitian_emo", "zhiyan_emo", "zhizhe_emo", "zhibei_emo"]}',
            ("zhitian_emo", "zhiyan_emo", "zhizhe_emo", "zhibei_emo"),
        ),
        ('{"voices": ["a", "b", "a"]}', ("a", "b")),
        ('{"voices": ["only"], "extra": 1}', ("only",)),
    ],
)
def test_parse_voices(text: str, expected: tuple[str, ...]) -> None:
    assert parse_voices(text) == expected


@pytest.mark.parametrize(
    "text", ['{"voices": []}', "{}", '["a"]', '{"voices": ["a", ""]}', '{"voices": [1]}']
)
def test_parse_voices_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_voices(text)


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("{}", 16000),
        ('{"model": {"type": "sambert-hifigan"}}', 16000),
        ('{"model": {"sample_rate": 24000}}', 24000),
    ],
)
def test_model_sample_rate(text: str, rate: int) -> None:
    assert model_sample_rate(text) == rate


def wav_bytes(samples: np.ndarray, rate: int, channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes((samples * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def tone(rate: int, hz: float = 440.0, seconds: float = 0.5) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def peak_hz(wave_: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave_))
    return float(np.fft.rfftfreq(wave_.size, 1 / rate)[spectrum.argmax()])


def test_decode_wav_round_trip() -> None:
    source = tone(16000)
    samples, rate = decode_wav(wav_bytes(source, 16000))
    assert rate == 16000
    assert samples.dtype == np.float32
    np.testing.assert_allclose(samples, source, atol=1e-4)


def test_decode_wav_averages_channels() -> None:
    stereo = np.stack([tone(16000), np.zeros(8000, np.float32)], axis=1).reshape(-1)
    samples, _ = decode_wav(wav_bytes(stereo, 16000, channels=2))
    np.testing.assert_allclose(samples, tone(16000) / 2, atol=1e-4)


@pytest.mark.parametrize(
    ("source", "target"), [(16000, 16000), (16000, 24000), (24000, 16000), (16000, 48000)]
)
def test_wav_to_rate_keeps_pitch_and_duration(source: int, target: int) -> None:
    out = wav_to_rate(wav_bytes(tone(source), source), target)
    assert out.size == pytest.approx(target * 0.5, abs=2)
    assert peak_hz(out, target) == pytest.approx(440, abs=3)


PRESENT = PackageState(installed=True)


def facts(**states: PackageState):
    return lambda name: states.get(name, PRESENT)


def model_dir(tmp_path: Path, files: tuple[str, ...]) -> Path:
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    return tmp_path


ALL_FILES = ("configuration.json", "resource.zip", "voices/voices.json")


@pytest.mark.parametrize(
    ("python", "states", "files", "expected"),
    [
        ((3, 10), {}, ALL_FILES, []),
        ((3, 11), {}, ALL_FILES, ["Python 3.10 exactly"]),
        (
            (3, 10),
            {"kantts": PackageState(False)},
            ALL_FILES,
            ["packages not installed: kantts", FIND_LINKS_HINT],
        ),
        (
            (3, 10),
            {"ttsfrd": PackageState(True, genuine=False)},
            ALL_FILES,
            ["placeholder packages from PyPI installed instead of the real ttsfrd", FIND_LINKS_HINT],
        ),
        ((3, 10), {"torch": PackageState(False)}, ALL_FILES, ["packages not installed: torch"]),
        ((3, 10), {}, ("configuration.json",), ["model files in {dir}: resource.zip, voices/voices.json"]),
        (
            (3, 12),
            {"modelscope": PackageState(False), "ttsfrd": PackageState(False)},
            (),
            [
                "Python 3.10 exactly",
                "packages not installed: modelscope, ttsfrd",
                FIND_LINKS_HINT,
                "model files",
            ],
        ),
    ],
)
def test_missing_requirements(tmp_path: Path, python, states, files, expected: list[str]) -> None:
    directory = model_dir(tmp_path, files)
    missing = missing_requirements(python, facts(**states), directory)
    assert len(missing) == len(expected)
    for line, start in zip(missing, expected, strict=True):
        assert line.startswith(start.format(dir=directory)), (line, start)


def test_missing_model_dir_is_named(tmp_path: Path) -> None:
    assert missing_requirements((3, 10), facts(), None) == [
        "a model directory (set TTS_MODEL_DIR or --model-dir)"
    ]
    gone = tmp_path / "nope"
    assert missing_requirements((3, 10), facts(), gone) == [f"model directory {gone} (it does not exist)"]


@pytest.mark.parametrize("layout", ["package", "module"])
def test_package_state_spots_placeholders(tmp_path: Path, monkeypatch, layout: str) -> None:
    assert package_state("surely_not_a_module_xyz") == PackageState(installed=False)
    # PyPI's kantts 0.1.0 and ttsfrd 0.1.0 wheels hold exactly this: <name>/__init__.py with hello().
    fake = tmp_path / "fake"
    for name in ("kantts", "ttsfrd"):
        source = f'# __init__.py for {name} package\ndef hello():\n    return "Hello from {name}"\n'
        path = fake / name / "__init__.py" if layout == "package" else fake / f"{name}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    monkeypatch.syspath_prepend(str(fake))
    assert package_state("kantts") == PackageState(True, genuine=False)
    assert package_state("ttsfrd") == PackageState(True, genuine=False)


def test_package_state_accepts_real_shapes(tmp_path: Path, monkeypatch) -> None:
    real = tmp_path / "real"
    (real / "kantts" / "models").mkdir(parents=True)
    (real / "kantts" / "__init__.py").write_text("")
    # Never loaded: find_spec only looks at the file name, so an empty extension file is enough.
    (real / f"ttsfrd{importlib.machinery.EXTENSION_SUFFIXES[0]}").write_bytes(b"")
    monkeypatch.syspath_prepend(str(real))
    assert package_state("kantts") == PackageState(True, genuine=True)
    assert package_state("ttsfrd") == PackageState(True, genuine=True)


def test_constructor_refuses_here_with_one_message(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable) as caught:
        SambertEngine(tmp_path)
    message = str(caught.value)
    assert message.startswith("engine 'sambert-hifigan' cannot run here; it needs: ")
    assert "configuration.json" in message
    if sys.version_info[:2] != (3, 10):
        assert f"this is Python {sys.version_info.major}.{sys.version_info.minor}" in message
    for package in ("kantts", "ttsfrd"):
        assert package_state(package).installed is False  # this project never installs them from PyPI
        assert package in message


def test_writable_dir_is_used_in_place(tmp_path: Path) -> None:
    assert is_writable(tmp_path)
    assert writable_model_dir(tmp_path, tmp_path / "work") == tmp_path.resolve()


def test_read_only_dir_is_copied_once(tmp_path: Path) -> None:
    source = model_dir(tmp_path / "mounted", ALL_FILES)
    (source / "voices").chmod(0o555)
    work = tmp_path / "work"
    copy = writable_model_dir(source, work, writable=lambda _: False)
    assert copy == work.resolve() / "mounted"
    assert sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file()) == sorted(
        [*ALL_FILES, ".voicefleet-copied"]
    )
    assert is_writable(copy / "voices")
    (copy / "resource").mkdir()  # what SambertHifigan unpacks at start survives the next call
    assert writable_model_dir(source, work, writable=lambda _: False) == copy
    assert (copy / "resource").is_dir()
    assert json.loads((copy / "configuration.json").read_text()) == {}


def test_cpu_hides_gpus_and_distributed_variables_are_dropped() -> None:
    env = {"CUDA_VISIBLE_DEVICES": "0", "WORLD_SIZE": "2", "RANK": "1", "PATH": "/bin"}
    hide_gpus_for_cpu("cpu", env)
    assert env == {"CUDA_VISIBLE_DEVICES": "", "PATH": "/bin"}
    env = {"CUDA_VISIBLE_DEVICES": "0"}
    hide_gpus_for_cpu("auto", env)
    assert env == {"CUDA_VISIBLE_DEVICES": "0"}


def test_one_lock_per_voice() -> None:
    assert voice_lock("zhitian_emo") is voice_lock("zhitian_emo")
    assert voice_lock("zhitian_emo") is not voice_lock("zhiyan_emo")
