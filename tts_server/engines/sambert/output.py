"""Turns the pipeline's output (RIFF WAV bytes, 16-bit mono) into float32 at the engine's rate."""

from __future__ import annotations

import io
import wave

import numpy as np

from tts_server.audio.resample import resample


def decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Float32 samples in [-1, 1) and the sample rate of a 16-bit PCM WAV (channels are averaged)."""
    with wave.open(io.BytesIO(data)) as reader:
        if reader.getsampwidth() != 2:
            raise ValueError(f"expected 16-bit PCM, got {8 * reader.getsampwidth()}-bit")
        channels, rate = reader.getnchannels(), reader.getframerate()
        pcm = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    samples = pcm.astype(np.float32) / 32768.0
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return samples, rate


def wav_to_rate(data: bytes, rate: int) -> np.ndarray:
    """The WAV's samples resampled to rate (a no-op when the model already writes that rate)."""
    samples, source_rate = decode_wav(data)
    return resample(samples, source_rate, rate)
