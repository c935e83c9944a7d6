"""What Sambert needs from the interpreter and the model directory, checked before anything is imported.

Checking first (instead of letting the import fail) lets the server refuse with one message that names
everything missing, and catches PyPI's placeholder `kantts`/`ttsfrd` packages, which import fine but
contain only a stub function.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tts_server.engines.base import EngineUnavailable

REQUIRED_PYTHON = (3, 10)
MODEL_FILES = ("configuration.json", "resource.zip", "voices/voices.json")
FIND_LINKS_HINT = "install kantts and ttsfrd from ModelScope's find-links page (never from PyPI)"


@dataclass(frozen=True)
class PackageState:
    installed: bool
    genuine: bool = True


def package_state(name: str) -> PackageState:
    """Whether a package is importable and is the real one, judged from its files without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None:
        return PackageState(installed=False)
    locations = [Path(p) for p in spec.submodule_search_locations or ()]
    if name == "kantts":
        # The real KAN-TTS is a package of subpackages (models, utils, ...); the placeholder is one file.
        return PackageState(True, any((p / "models").is_dir() for p in locations))
    if name == "ttsfrd":
        # The real ttsfrd is a compiled extension; the placeholder is pure Python.
        origins = [Path(spec.origin)] if spec.origin else []
        origins += [f for p in locations for f in p.glob("*.so")]
        return PackageState(True, any(o.suffix == ".so" for o in origins))
    return PackageState(True)


def missing_requirements(
    python: tuple[int, int],
    packages: Callable[[str], PackageState],
    model_dir: Path | None,
) -> list[str]:
    """Human-readable list of everything that stops Sambert from running; empty when it can run."""
    missing: list[str] = []
    if python != REQUIRED_PYTHON:
        missing.append(
            "Python 3.10 exactly (modelscope's SambertHifigan refuses newer interpreters and ttsfrd "
            f"ships cp310 wheels only); this is Python {python[0]}.{python[1]}"
        )
    absent = [name for name in ("modelscope", "torch", "kantts", "ttsfrd") if not packages(name).installed]
    if absent:
        missing.append(f"packages not installed: {', '.join(absent)}")
    fakes = [name for name in ("kantts", "ttsfrd") if name not in absent and not packages(name).genuine]
    if fakes:
        missing.append(f"placeholder packages from PyPI installed instead of the real {', '.join(fakes)}")
    if {"kantts", "ttsfrd"} & {*absent, *fakes}:
        missing.append(FIND_LINKS_HINT)
    if model_dir is None:
        missing.append("a model directory (set TTS_MODEL_DIR or --model-dir)")
    elif not model_dir.is_dir():
        missing.append(f"model directory {model_dir} (it does not exist)")
    else:
        lacking = [name for name in MODEL_FILES if not (model_dir / name).is_file()]
        if lacking:
            missing.append(f"model files in {model_dir}: {', '.join(lacking)}")
    return missing


def refusal_message(missing: list[str]) -> str:
    return "engine 'sambert-hifigan' cannot run here; it needs: " + "; ".join(missing)


def check_runnable(model_dir: Path | None) -> Path:
    """The model directory, once everything Sambert needs is known to be here; else EngineUnavailable."""
    missing = missing_requirements((sys.version_info.major, sys.version_info.minor), package_state, model_dir)
    if missing or model_dir is None:
        raise EngineUnavailable(refusal_message(missing))
    return model_dir
