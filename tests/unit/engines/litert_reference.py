"""Deterministic LiteRT references for parity tests of the torch port, built in memory.

The shipped FastSpeech2 graph is not a fixed function: its f0/energy embeddings keep training-mode
dropout (random keep 1/2, scale 2), and its int8 kernels run as "hybrid" ops that also quantize
activations at run time. Two rewrites of the flatbuffer give references we can compare against:

- dropout off: the keep threshold becomes 0 (uniform [0, 1) >= 0 always) and the scale 1, which is
  the expectation of the dropout and exactly what the port computes;
- float kernels: int8 CONV_2D / FULLY_CONNECTED kernels are replaced by their dequantized float32
  values, so LiteRT runs the same arithmetic as the port (same graph, float ops).
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from tts_server.engines.baker.tflite_patch import replace_flex_random_uniform

_FILE_IDENTIFIER = b"TFL3"


def _load(model_bytes: bytes) -> schema.ModelT:
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model_bytes, 0))


def _save(model: schema.ModelT, size_hint: int) -> bytes:
    builder = flatbuffers.Builder(size_hint + 4096)
    builder.Finish(model.Pack(builder), file_identifier=_FILE_IDENTIFIER)
    return bytes(builder.Output())


def _set_constant(model: schema.ModelT, tensor: schema.TensorT, value: np.ndarray) -> None:
    """Points one tensor at a new buffer, so tensors that shared the old (merged) buffer keep theirs."""
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(np.ascontiguousarray(value).tobytes(), dtype=np.uint8)
    model.buffers.append(buffer)
    tensor.buffer = len(model.buffers) - 1


def _opcode_names(model: schema.ModelT) -> list[str]:
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return [
        code.customCode.decode()
        if code.customCode
        else names[max(code.builtinCode, code.deprecatedBuiltinCode)]
        for code in model.operatorCodes
    ]


def acoustic_reference(model_bytes: bytes, float_kernels: bool) -> bytes:
    """The FastSpeech2 graph with dropout off and (optionally) float32 kernels, runnable by LiteRT."""
    patched, _ = replace_flex_random_uniform(model_bytes)
    model = _load(patched)
    kinds = _opcode_names(model)
    graph = model.subgraphs[0]
    disabled = 0
    for op in graph.operators:
        kind = kinds[op.opcodeIndex]
        if kind == "GREATER_EQUAL" and b"dropout" in graph.tensors[op.outputs[0]].name:
            _set_constant(model, graph.tensors[op.inputs[1]], np.float32(0.0))
            # The scale is the other operand of the MUL that feeds this mask's consumer.
            disabled += 1
        elif kind == "MUL" and graph.tensors[op.outputs[0]].name.endswith(b"dropout/Mul"):
            constant = op.inputs[1]
            _set_constant(model, graph.tensors[constant], np.float32(1.0))
        elif float_kernels and kind in ("CONV_2D", "FULLY_CONNECTED"):
            kernel = graph.tensors[op.inputs[1]]
            if kernel.type != schema.TensorType.INT8:
                continue
            raw = model.buffers[kernel.buffer].data.view(np.int8).reshape(kernel.shape)
            q = kernel.quantization
            scale = np.asarray(q.scale, np.float32)
            zero = np.asarray(q.zeroPoint, np.int64)
            if scale.size > 1:
                shape = [1] * raw.ndim
                shape[q.quantizedDimension] = scale.size
                scale, zero = scale.reshape(shape), zero.reshape(shape)
            _set_constant(model, kernel, ((raw.astype(np.int64) - zero) * scale).astype(np.float32))
            kernel.type = schema.TensorType.FLOAT32
            kernel.quantization = None
    if disabled != 2:
        raise ValueError(f"expected 2 dropout masks in the acoustic graph, found {disabled}")
    return _save(model, len(model_bytes) * (4 if float_kernels else 1))
