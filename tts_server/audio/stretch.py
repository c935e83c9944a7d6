"""WSOLA time-stretching: changes tempo without changing pitch, for speeds a model cannot make natively."""

from __future__ import annotations

import numpy as np


def time_stretch(wave: np.ndarray, rate: float, sample_rate: int) -> np.ndarray:
    """rate > 1 makes speech faster (shorter). Output length is about len(wave) / rate."""
    if wave.size == 0 or abs(rate - 1.0) < 1e-6:
        return wave.astype(np.float32, copy=True)
    frame = int(0.030 * sample_rate)
    synthesis_hop = frame // 2
    analysis_hop = synthesis_hop * rate
    tolerance = int(0.010 * sample_rate)
    window = np.hanning(frame).astype(np.float32)
    padded = np.concatenate(
        [np.zeros(tolerance, np.float32), wave.astype(np.float32), np.zeros(frame + tolerance, np.float32)]
    )
    out_len = int(wave.size / rate) + frame
    out = np.zeros(out_len + frame, np.float32)
    norm = np.zeros_like(out)
    delta = 0
    position = 0
    k = 0
    while True:
        start = int(k * analysis_hop) + tolerance + delta
        if start + frame > padded.size or position + frame > out.size:
            break
        out[position : position + frame] += padded[start : start + frame] * window
        norm[position : position + frame] += window
        # The segment that would naturally follow the one just placed; search the next analysis
        # position for the best match to it, so waveforms join in phase.
        natural = padded[start + synthesis_hop : start + synthesis_hop + frame]
        k += 1
        centre = int(k * analysis_hop) + tolerance
        lo, hi = max(centre - tolerance, 0), min(centre + tolerance, padded.size - frame)
        if hi <= lo or natural.size < frame:
            delta = 0
        else:
            region = padded[lo : hi + frame]
            corr = np.correlate(region, natural, mode="valid")
            delta = int(np.argmax(corr)) + lo - centre
        position += synthesis_hop
    norm[norm < 1e-3] = 1.0
    return (out / norm)[: int(wave.size / rate)].astype(np.float32)
