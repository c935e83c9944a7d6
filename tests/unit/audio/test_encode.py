import numpy as np
import pytest

from tests.audio_decode import decode, wav_fields
from tts_server.audio.encode import FORMATS, encode_whole, stream_encoder
from tts_server.audio.gain import PEAK, apply_gain
from tts_server.audio.resample import resample
from tts_server.audio.stretch import time_stretch

RATE = 24000
# Lossy codecs add encoder priming and pad the last frame (AAC: up to 2048 samples); decoders without
# gapless metadata keep both, so only lossless formats must match the input length exactly.
LENGTH_TOLERANCE_S = {"wav": 0.001, "pcm": 0.001, "flac": 0.001, "mp3": 0.15, "aac": 0.15, "opus": 0.15}


def tone(seconds: float = 1.0, rate: int = RATE, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("rate", [24000, 16000, 22050])
def test_whole_file_decodes_at_rate_and_length(fmt: str, rate: int) -> None:
    wave = tone(1.0, rate)
    samples, decoded_rate = decode(encode_whole(fmt, wave, rate), fmt, pcm_rate=rate)
    seconds = samples.size / decoded_rate
    assert seconds == pytest.approx(1.0, abs=LENGTH_TOLERANCE_S[fmt])
    if fmt != "opus":  # Opus always decodes at 48 kHz
        assert decoded_rate == rate
    assert np.sqrt(np.mean(samples**2)) == pytest.approx(0.4 / np.sqrt(2), rel=0.15)


@pytest.mark.parametrize("fmt", FORMATS)
def test_stream_of_chunks_is_one_continuous_file(fmt: str) -> None:
    encoder = stream_encoder(fmt, RATE)
    parts = [encoder.encode(tone(0.5)), encoder.encode(tone(0.7)), encoder.finish()]
    samples, rate = decode(b"".join(parts), fmt)
    assert samples.size / rate == pytest.approx(1.2, abs=LENGTH_TOLERANCE_S[fmt])


def test_wav_stream_has_one_header_with_unknown_sizes() -> None:
    encoder = stream_encoder("wav", RATE)
    data = encoder.encode(tone(0.2)) + encoder.encode(tone(0.2)) + encoder.finish()
    assert data.count(b"RIFF") == 1
    fields = wav_fields(data)
    assert fields["data_size"] == 0xFFFFFFFF
    assert (fields["channels"], fields["rate"], fields["bits"]) == (1, RATE, 16)
    assert len(data) == 44 + 2 * int(0.4 * RATE)


def test_whole_wav_has_exact_sizes() -> None:
    data = encode_whole("wav", tone(0.5), RATE)
    assert wav_fields(data)["data_size"] == len(data) - 44


def test_resample_keeps_duration_and_frequency() -> None:
    out = resample(tone(1.0, 24000, freq=300), 24000, 16000)
    assert out.size == 16000
    peak_hz = np.argmax(np.abs(np.fft.rfft(out))) * 16000 / out.size
    assert peak_hz == pytest.approx(300, abs=2)


@pytest.mark.parametrize("rate", [0.5, 1.5, 2.0])
def test_time_stretch_changes_length_not_pitch(rate: float) -> None:
    out = time_stretch(tone(2.0, freq=220), rate, RATE)
    assert out.size == pytest.approx(2.0 * RATE / rate, rel=0.02)
    peak_hz = np.argmax(np.abs(np.fft.rfft(out))) * RATE / out.size
    assert peak_hz == pytest.approx(220, rel=0.03)


def test_gain_never_clips() -> None:
    loud = apply_gain(tone(0.2) * 2, 3.0)
    assert np.abs(loud).max() <= PEAK + 1e-6
    assert np.abs(apply_gain(tone(0.2), 0.5)).max() == pytest.approx(0.2, rel=0.01)


def test_finish_prosody_stretches_only_when_asked_then_limits_peak() -> None:
    from tts_server.audio.post import finish_prosody

    wave = tone(1.0)
    assert finish_prosody(wave, RATE, 1.0, 1.0).size == wave.size
    faster = finish_prosody(wave, RATE, 2.0, 4.0)
    assert faster.size == pytest.approx(RATE / 2, rel=0.02)
    assert np.abs(faster).max() <= PEAK + 1e-6
