"""EmotiVoice adapter vs upstream's own inference script, on random weights of the real shapes.

    PYTHON=/path/to/venv-with-torch/bin/python   # torch, transformers<5, yacs, numba, g2p_en, jieba,
                                                 # pypinyin, pypinyin_dict, soundfile, tqdm, scipy
    $PYTHON benchmarks/emotivoice_parity.py --checkout /tmp/EmotiVoice --work /tmp/ev-parity

The real weights cannot be downloaded here, so this builds random ones with upstream's own classes
(JETSGenerator, StyleEncoder, a BERT-base of simbert's size over a small vocabulary), saves them in
upstream's checkpoint formats, then synthesizes the same cases twice: through
tts_server.engines.emotivoice (no chdir, config rebuilt from the checkout's files) and through
upstream's inference_am_vocoder_joint.py run from a copy of the checkout. Equal samples mean the
adapter loads and calls the model exactly as upstream does. Everything it writes stays under --work;
results go to benchmarks/results/emotivoice_parity.json (timings there say nothing about real speed:
random weights predict random durations). The checkout must be at the commit pinned
in Dockerfile.tts; if its lexicon/librispeech-lexicon.txt is missing, a two-word stand-in is written.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

CASES = (  # text, speaker, emotion, instructions
    ("欢迎使用语音合成服务，今天天气很好。", "8051", "happy", None),
    ("我们正在测试离线中文语音合成。", "9017", "neutral", "用悲伤的语气说"),
    ("hello world", "11614", "angry", None),
    ("你好 hello world 一二三", "8051", "sad", None),
)
STAND_IN_WORDS = {"HELLO": "HH AH0 L OW1", "WORLD": "W ER1 L D"}


def prepare_checkout(source: Path, work: Path) -> Path:
    checkout = work / "checkout"
    if not checkout.exists():
        shutil.copytree(source, checkout, ignore=shutil.ignore_patterns(".git"))
    lexicon = checkout / "lexicon/librispeech-lexicon.txt"
    if not lexicon.exists():
        lexicon.parent.mkdir(parents=True, exist_ok=True)
        lexicon.write_text("".join(f"{w} {p}\n" for w, p in STAND_IN_WORDS.items()))
    # g2p_en's G2p() reads NLTK's CMU dictionary; a stand-in keeps this offline.
    cmudict = work / "nltk_data/corpora/cmudict/cmudict"
    cmudict.parent.mkdir(parents=True, exist_ok=True)
    cmudict.write_text("".join(f"{w} 1 {p}\n" for w, p in STAND_IN_WORDS.items()))
    os.environ["NLTK_DATA"] = str(work / "nltk_data")
    return checkout


def random_weights(checkout: Path, weights: Path) -> dict[str, float]:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    from tts_server.engines.emotivoice.prompts import count_labels
    from tts_server.engines.emotivoice.upstream import import_from_checkout, style_config

    torch.manual_seed(0)
    bert = weights / "WangZeJun/simbert-base-chinese"
    bert.mkdir(parents=True, exist_ok=True)
    cjk = {ch for text, *_ in CASES for ch in text if ord(ch) > 0x2E80}
    chars = sorted(cjk | set("普通开心悲伤生气语气用说的"))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *map(chr, range(33, 127)), *chars]
    (bert / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizer(str(bert / "vocab.txt")).save_pretrained(str(bert))
    config = BertConfig(vocab_size=len(vocab), hidden_size=768, num_hidden_layers=12, num_attention_heads=12)
    BertModel(config).save_pretrained(str(bert), safe_serialization=False)

    import_from_checkout(checkout)
    from models.prompt_tts_modified.jets import JETSGenerator
    from models.prompt_tts_modified.simbert import StyleEncoder
    from yacs import config as yacs_config

    style = StyleEncoder(style_config(checkout, weights))
    path = weights / "style_encoder/ckpt/checkpoint_163431"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Upstream's checkpoint comes from DistributedDataParallel: its keys carry "module.".
    torch.save({"model": {"module." + k: v for k, v in style.state_dict().items()}}, path)
    with (checkout / "config/joint/config.yaml").open() as fin:
        conf = yacs_config.load_cfg(fin)
    labels = checkout / "data/youdao/text"
    conf.n_vocab = count_labels((labels / "tokenlist").read_text(encoding="utf-8"))
    conf.n_speaker = count_labels((labels / "speaker2").read_text(encoding="utf-8"))
    generator = JETSGenerator(conf)
    path = weights / "prompt_tts_open_source_joint/ckpt/g_00140000"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"generator": generator.state_dict()}, path)
    return {
        "generator_params_m": sum(p.numel() for p in generator.parameters()) / 1e6,
        "style_encoder_params_m": sum(p.numel() for p in style.parameters()) / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, required=True, help="EmotiVoice checkout (pinned commit)")
    parser.add_argument("--work", type=Path, required=True, help="scratch directory outside the repo")
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    checkout = prepare_checkout(args.checkout.resolve(), work)
    weights = work / "weights"
    sizes = random_weights(checkout, weights)

    import numpy as np
    import soundfile as sf

    from tts_server.engines.base import Segment
    from tts_server.engines.emotivoice.engine import EmotiVoiceEngine
    from tts_server.engines.emotivoice.prompts import style_prompt

    cwd = os.getcwd()
    started = time.perf_counter()
    engine = EmotiVoiceEngine(checkout, weights, device="cpu")
    load_s = time.perf_counter() - started
    engine.warm_up()
    segments = [Segment(text, voice, emotion, instructions=extra) for text, voice, emotion, extra in CASES]
    ours, lines, timings = [], [], []
    for segment in segments:
        started = time.perf_counter()
        ours.append(engine.synthesize([segment])[0])
        timings.append(time.perf_counter() - started)
        loaded = engine._m
        phonemes = loaded.g2p_cn_en(segment.text, loaded.g2p, loaded.lexicon)
        prompt = style_prompt(segment.emotion, segment.instructions)
        lines.append(f"{segment.voice}|{prompt}|{phonemes}|{segment.text}")

    upstream = work / "upstream-run"
    if not upstream.exists():
        shutil.copytree(checkout, upstream)
        (upstream / "outputs").symlink_to(weights)
        (upstream / "WangZeJun").symlink_to(weights / "WangZeJun")
    (upstream / "cases.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    script = [sys.executable, "inference_am_vocoder_joint.py", "--logdir", "prompt_tts_open_source_joint"]
    script += ["--config_folder", "config/joint", "--checkpoint", "g_00140000", "--test_file", "cases.txt"]
    subprocess.run(script, cwd=upstream, check=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    produced = weights / "prompt_tts_open_source_joint/test_audio/audio/g_00140000"

    cases = []
    for index, (segment, wave, took) in enumerate(zip(segments, ours, timings, strict=True)):
        theirs, rate = sf.read(produced / f"{index + 1}.wav", dtype="int16")
        mine = (wave * 32768.0).astype(np.int64)
        same_length = mine.size == theirs.size
        diff = int(np.abs(mine - theirs.astype(np.int64)).max()) if same_length else None
        cases.append({
            "text": segment.text, "speaker": segment.voice, "prompt": style_prompt(segment.emotion,
            segment.instructions), "samples_ours": int(wave.size), "samples_upstream": int(theirs.size),
            "rate_upstream": rate, "max_abs_diff_lsb": diff, "synthesis_s": took,
        })
    prompts_matter = not np.array_equal(
        engine.synthesize([Segment(CASES[0][0], "8051", "happy")])[0],
        engine.synthesize([Segment(CASES[0][0], "8051", "sad")])[0],
    )
    result = {
        "what": "EmotiVoice adapter vs upstream inference_am_vocoder_joint.py, random weights, CPU",
        "python": platform.python_version(),
        "load_s": load_s,
        "cwd_unchanged": os.getcwd() == cwd,
        "voices": len(engine.info.voices),
        "different_prompts_give_different_audio": prompts_matter,
        **sizes,
        "cases": cases,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "emotivoice_parity.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(result, indent=1, ensure_ascii=False))
    if not all(case["max_abs_diff_lsb"] == 0 for case in cases):
        raise SystemExit("adapter and upstream differ")


if __name__ == "__main__":
    main()
