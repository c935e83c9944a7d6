"""The files EmotiVoice needs: a checkout of its repository and a weights directory, checked up front.

The weights directory mirrors the checkout's outputs/ folder, plus the BERT the style encoder wraps:

    <weights>/prompt_tts_open_source_joint/ckpt/g_00140000     acoustic model + HiFi-GAN (213 MB)
    <weights>/style_encoder/ckpt/checkpoint_163431             style encoder (1.16 GB)
    <weights>/WangZeJun/simbert-base-chinese/                  BERT config, weights and vocab (~400 MB)
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

CHECKOUT_FILES = (
    "frontend.py",
    "frontend_cn.py",
    "frontend_en.py",
    "config/joint/config.yaml",
    "models/prompt_tts_modified/jets.py",
    "models/prompt_tts_modified/simbert.py",
    "data/youdao/text/speaker2",
    "data/youdao/text/tokenlist",
    "data/youdao/text/emotion",
    "data/youdao/text/pitch",
    "data/youdao/text/energy",
    "data/youdao/text/speed",
    "lexicon/librispeech-lexicon.txt",
)
ACOUSTIC_CKPT = "prompt_tts_open_source_joint/ckpt/g_00140000"
STYLE_CKPT = "style_encoder/ckpt/checkpoint_163431"
BERT_DIR = "WangZeJun/simbert-base-chinese"
WEIGHT_FILES = (ACOUSTIC_CKPT, STYLE_CKPT, f"{BERT_DIR}/config.json", f"{BERT_DIR}/vocab.txt")
BERT_WEIGHTS = ("pytorch_model.bin", "model.safetensors")
# Import names of what upstream's inference path imports: torch, the BERT, yacs configs, numba (its
# alignment module jit-compiles with it) and the frontends.
PACKAGES = ("torch", "transformers", "yacs", "numba", "g2p_en", "jieba", "pypinyin", "pypinyin_dict")


def missing_files(checkout: Path | None, weights: Path | None) -> list[str]:
    missing: list[str] = []
    if checkout is None:
        missing.append("an EmotiVoice checkout (set TTS_EMOTIVOICE_CHECKOUT or --emotivoice-checkout)")
    else:
        lacking = [name for name in CHECKOUT_FILES if not (checkout / name).is_file()]
        if lacking:
            missing.append(f"checkout files in {checkout}: {', '.join(lacking)}")
    if weights is None:
        missing.append("an EmotiVoice weights directory (set TTS_EMOTIVOICE_WEIGHTS or --emotivoice-weights)")
    else:
        lacking = [name for name in WEIGHT_FILES if not (weights / name).is_file()]
        if not any((weights / BERT_DIR / name).is_file() for name in BERT_WEIGHTS):
            lacking.append(f"{BERT_DIR}/{' or '.join(BERT_WEIGHTS)}")
        if lacking:
            missing.append(f"weight files in {weights}: {', '.join(lacking)}")
    return missing


def missing_packages(installed: Callable[[str], bool] | None = None) -> list[str]:
    installed = installed or (lambda name: importlib.util.find_spec(name) is not None)
    return [name for name in PACKAGES if not installed(name)]


def refusal_message(missing: list[str]) -> str:
    return "engine 'emotivoice' cannot run here; it needs: " + "; ".join(missing)
