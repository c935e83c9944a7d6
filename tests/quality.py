"""Speech quality guards that fail on silence, noise, clipping or implausible durations."""

from __future__ import annotations

import numpy as np


def syllables(text: str) -> int:
    return sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")


def assert_speech(wave: np.ndarray, rate: int, expected_syllables: int) -> None:
    assert wave.ndim == 1 and wave.size > 0
    wave = wave.astype(np.float64)
    rms = float(np.sqrt(np.mean(wave**2)))
    assert rms > 0.01, f"near-silent output (rms {rms:.4f})"
    clipped = float(np.mean(np.abs(wave) >= 0.999))
    assert clipped < 0.001, f"{clipped:.2%} of samples clipped"
    seconds = wave.size / rate
    per_syllable = seconds / max(expected_syllables, 1)
    # Read Mandarin runs at roughly 3-7 syllables per second, pauses included.
    assert 0.1 <= per_syllable <= 0.45, f"{seconds:.2f}s for {expected_syllables} syllables"
    spectrum = np.abs(np.fft.rfft(wave)) ** 2
    freqs = np.fft.rfftfreq(wave.size, 1 / rate)
    band = spectrum[(freqs >= 80) & (freqs <= 8000)].sum() / spectrum.sum()
    assert band > 0.9, f"only {band:.0%} of energy in the 80 Hz-8 kHz speech band"
    # Speech alternates between voiced frames and pauses; noise or a tone does not.
    frame = rate // 50
    energies = np.array([np.mean(wave[i : i + frame] ** 2) for i in range(0, wave.size - frame, frame)])
    loud = energies > 0.1 * energies.max()
    assert 0.2 < loud.mean() < 0.95, f"{loud.mean():.0%} of 20 ms frames loud: not speech-like"


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-noise ratio of test against reference, in dB (inf when identical)."""
    reference, test = reference.astype(np.float64), test.astype(np.float64)
    noise = float(np.sum((reference - test) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(float(np.sum(reference**2)) / noise)
