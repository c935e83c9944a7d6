"""The Sambert model directory: its voices, its sample rate, and a writable place to run it from.

SambertHifigan unpacks resource.zip into the model directory at every start, so a read-only mount
(a PVC mounted ReadOnlyMany, a baked image layer owned by root) is copied to a writable directory first.
"""

from __future__ import annotations

import json
import logging
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)
DEFAULT_SAMPLE_RATE = 16_000


def parse_voices(voices_json: str) -> tuple[str, ...]:
    """Voice names from voices/voices.json ({"voices": ["zhitian_emo", ...]}), in the file's order."""
    data = json.loads(voices_json)
    voices = data.get("voices") if isinstance(data, dict) else None
    if not isinstance(voices, list) or not voices or not all(isinstance(v, str) and v for v in voices):
        raise ValueError("voices.json must hold a non-empty list of voice names under 'voices'")
    return tuple(dict.fromkeys(voices))


def model_sample_rate(configuration_json: str) -> int:
    """The rate the model writes (configuration.json model.sample_rate; SambertHifigan defaults to 16 kHz)."""
    model = json.loads(configuration_json).get("model", {})
    rate = model.get("sample_rate", DEFAULT_SAMPLE_RATE) if isinstance(model, dict) else DEFAULT_SAMPLE_RATE
    return int(rate)


def is_writable(directory: Path) -> bool:
    """Tries a real write: os.access says yes to root even on a read-only mount."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            return True
    except OSError:
        return False


def writable_model_dir(
    model_dir: Path, work_dir: Path, writable: Callable[[Path], bool] = is_writable
) -> Path:
    """model_dir itself when writable, else a copy under work_dir (reused when already complete)."""
    model_dir = model_dir.resolve()
    if writable(model_dir):
        return model_dir
    target = work_dir.resolve() / model_dir.name
    marker = target / ".voicefleet-copied"
    if not marker.is_file():
        log.info("sambert: %s is read-only; copying it to %s", model_dir, target)
        shutil.rmtree(target, ignore_errors=True)
        # Only the mode bits of files are copied (copy, not copy2), so the copy is writable by us.
        shutil.copytree(model_dir, target, copy_function=shutil.copy)
        # copytree also copies directory modes, so a 0555 source would give a 0555 copy.
        for directory in (target, *(p for p in target.rglob("*") if p.is_dir())):
            directory.chmod(directory.stat().st_mode | stat.S_IWUSR | stat.S_IXUSR)
        marker.write_text(str(model_dir))
    return target
