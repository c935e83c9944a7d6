"""The prosody an engine's model could not make itself, applied to its waveform."""

from __future__ import annotations

import numpy as np

from tts_server.audio.gain import apply_gain
from tts_server.audio.stretch import time_stretch


def finish_prosody(wave: np.ndarray, sample_rate: int, speed: float, gain: float) -> np.ndarray:
    """Time-stretches by the speed factor the model left over (1.0: none), then applies a peak-safe gain."""
    if abs(speed - 1.0) > 1e-3:
        wave = time_stretch(wave, speed, sample_rate)
    return apply_gain(wave, gain)
