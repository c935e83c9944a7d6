"""Sample-rate conversion with a polyphase filter (exact for rational ratios)."""

from __future__ import annotations

from math import gcd

import numpy as np
from scipy.signal import resample_poly


def resample(wave: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    if source_rate == target_rate or wave.size == 0:
        return wave.astype(np.float32, copy=False)
    g = gcd(source_rate, target_rate)
    return resample_poly(wave, target_rate // g, source_rate // g).astype(np.float32)


def to_pcm16(wave: np.ndarray) -> np.ndarray:
    return (np.clip(wave, -1.0, 1.0) * 32767.0).astype("<i2")
