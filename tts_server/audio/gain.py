"""Loudness changes that never clip."""

from __future__ import annotations

import numpy as np

PEAK = 0.98


def apply_gain(wave: np.ndarray, gain: float) -> np.ndarray:
    """Scales by gain, then lowers the whole segment just enough to keep its peak under PEAK."""
    if gain == 1.0 and (wave.size == 0 or float(np.abs(wave).max()) <= PEAK):
        return wave
    out = wave * np.float32(gain)
    peak = float(np.abs(out).max()) if out.size else 0.0
    if peak > PEAK:
        out *= np.float32(PEAK / peak)
    return out.astype(np.float32, copy=False)
