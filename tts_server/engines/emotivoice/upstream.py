"""Loads EmotiVoice's own modules and weights from a checkout, the way its openaiapi.py does.

Upstream's config.joint.config computes its root from the process working directory at import time,
so it is not imported: the few values its models read are rebuilt here from the checkout's own files,
and the server's working directory is never changed.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tts_server.engines.base import EngineUnavailable
from tts_server.engines.emotivoice.layout import ACOUSTIC_CKPT, BERT_DIR, STYLE_CKPT
from tts_server.engines.emotivoice.prompts import count_labels, parse_labels

log = logging.getLogger(__name__)
# Constants of upstream's Config class (config/joint/config.py) that its StyleEncoder reads.
BERT_HIDDEN_SIZE = 768
STYLE_DIM = 128
SAMPLE_RATE = 16_000
LABEL_FILES = ("pitch", "speed", "energy", "emotion")
UPSTREAM_MODULES = ("frontend", "frontend_cn", "frontend_en", "models", "cn2an")


@dataclass
class Loaded:
    generator: Any
    style_encoder: Any
    tokenizer: Any
    token2id: dict[str, int]
    speaker2id: dict[str, int]
    g2p: Any
    lexicon: dict[str, list[str]]
    g2p_cn_en: Any


def _first(keys: list[str]) -> tuple[int, str]:
    return len(keys), keys[0]


def _text(checkout: Path, name: str) -> str:
    return (checkout / "data/youdao/text" / name).read_text(encoding="utf-8")


def style_config(checkout: Path, weights: Path) -> SimpleNamespace:
    """What StyleEncoder(config) reads from upstream's Config, with the BERT path made absolute."""
    return SimpleNamespace(
        bert_path=str(weights / BERT_DIR),
        bert_hidden_size=BERT_HIDDEN_SIZE,
        style_dim=STYLE_DIM,
        **{f"{k}_n_labels": count_labels(_text(checkout, k)) for k in LABEL_FILES},
    )


def import_from_checkout(checkout: Path) -> None:
    """Puts the checkout first on sys.path; refuses if a same-named module came from elsewhere."""
    root = checkout.resolve()
    for name in UPSTREAM_MODULES:
        module = sys.modules.get(name)
        if module is None:
            continue
        # Upstream's `models` has no __init__.py: a namespace package has __path__ but no __file__.
        file = getattr(module, "__file__", None)
        origins = [file] if file else list(getattr(module, "__path__", []))
        if not any(Path(origin).resolve().is_relative_to(root) for origin in origins):
            raise EngineUnavailable(
                f"engine 'emotivoice': a module named {name!r} is already imported from "
                f"{', '.join(map(str, origins)) or 'a built-in'}; EmotiVoice's top-level modules would "
                "clash with it"
            )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))


def load(checkout: Path, weights: Path, device: Any) -> Loaded:
    """Builds the generator and style encoder and loads their checkpoints, as upstream's get_models."""
    import torch
    from transformers import AutoTokenizer
    from yacs import config as yacs_config

    import_from_checkout(checkout)
    from frontend import G2p, g2p_cn_en, read_lexicon
    from models.prompt_tts_modified.jets import JETSGenerator
    from models.prompt_tts_modified.simbert import StyleEncoder

    token2id = parse_labels(_text(checkout, "tokenlist"))
    speaker2id = parse_labels(_text(checkout, "speaker2"))
    with (checkout / "config/joint/config.yaml").open(encoding="utf-8") as fin:
        conf = yacs_config.load_cfg(fin)
    conf.n_vocab = count_labels(_text(checkout, "tokenlist"))
    conf.n_speaker = count_labels(_text(checkout, "speaker2"))

    style_encoder = StyleEncoder(style_config(checkout, weights))
    state = torch.load(weights / STYLE_CKPT, map_location="cpu", weights_only=False)
    # Saved from DistributedDataParallel: every key starts with "module.".
    style_state = {key.removeprefix("module."): value for key, value in state["model"].items()}
    # Not strict, as upstream: weights the checkpoint lacks keep the simbert values from_pretrained loaded.
    result = style_encoder.load_state_dict(style_state, strict=False)
    if result.missing_keys:
        log.warning("emotivoice: style checkpoint lacks %d weights, e.g. %s", *_first(result.missing_keys))
    style_encoder.to(device).eval()

    generator = JETSGenerator(conf)
    state = torch.load(weights / ACOUSTIC_CKPT, map_location="cpu", weights_only=False)
    generator.load_state_dict(state["generator"])
    generator.to(device).eval()

    tokenizer = AutoTokenizer.from_pretrained(str(weights / BERT_DIR))
    lexicon = read_lexicon(str(checkout / "lexicon/librispeech-lexicon.txt"))
    return Loaded(generator, style_encoder, tokenizer, token2id, speaker2id, G2p(), lexicon, g2p_cn_en)
