"""Emotion presets for engines without an emotion model: each preset is a prosody change.

The embedded Baker voice was trained on neutral read speech only, so "happy" or "sad" here means
faster/slower speech with higher/lower pitch and louder/softer energy, not a learned emotional style.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prosody:
    speed: float = 1.0
    pitch: float = 1.0
    energy: float = 1.0
    # Linear output gain: the Baker energy input moves loudness only slightly, so presets that
    # should sound louder or softer also scale the waveform (peak-limited by the engine).
    gain: float = 1.0

    def combined(self, speed: float, pitch: float, energy: float) -> Prosody:
        return Prosody(self.speed * speed, self.pitch * pitch, self.energy * energy, self.gain)


EMOTION_PRESETS: dict[str, Prosody] = {
    "neutral": Prosody(),
    "happy": Prosody(speed=1.08, pitch=1.15, energy=1.15, gain=1.15),
    "sad": Prosody(speed=0.85, pitch=0.88, energy=0.8, gain=0.75),
    "angry": Prosody(speed=1.12, pitch=1.05, energy=1.35, gain=1.45),
    "surprised": Prosody(speed=1.0, pitch=1.25, energy=1.2, gain=1.2),
    "calm": Prosody(speed=0.92, pitch=0.96, energy=0.9, gain=0.85),
    "fearful": Prosody(speed=1.1, pitch=1.1, energy=0.85, gain=0.9),
}


def emotion_prosody(emotion: str, speed: float = 1.0, pitch: float = 1.0, energy: float = 1.0) -> Prosody:
    """The preset for emotion, scaled by the caller's own speed/pitch/energy multipliers."""
    return EMOTION_PRESETS[emotion].combined(speed, pitch, energy)
