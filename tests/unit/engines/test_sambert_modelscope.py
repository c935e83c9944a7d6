"""The Sambert adapter against the real, pinned modelscope: what it imports, and the parts of the
pipeline's source the adapter relies on (the pipeline itself needs torch, kantts and ttsfrd to import)."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import modelscope
from modelscope.utils.constant import Tasks

from tts_server.engines.sambert.model_dir import DEFAULT_SAMPLE_RATE
from tts_server.engines.sambert.requirements import MODEL_FILES, REQUIRED_PYTHON

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = Path(next(iter(importlib.util.find_spec("modelscope").submodule_search_locations)))


def tree(relative: str) -> ast.Module:
    return ast.parse((PACKAGE / relative).read_text(encoding="utf-8"))


def constants(module: ast.Module) -> set[object]:
    return {node.value for node in ast.walk(module) if isinstance(node, ast.Constant)}


def imported(module: ast.Module) -> set[str]:
    names = {alias.name for n in ast.walk(module) if isinstance(n, ast.Import) for alias in n.names}
    return names | {n.module or "" for n in ast.walk(module) if isinstance(n, ast.ImportFrom)}


def test_installed_version_is_the_pinned_one() -> None:
    pins = dict(re.findall(r"^([\w.-]+)==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M))
    lock = dict(re.findall(r"^([\w.-]+)==(\S+)", (ROOT / "requirements-sambert.lock").read_text(), re.M))
    assert modelscope.__version__ == pins["modelscope"] == lock["modelscope"]


def test_task_name() -> None:
    assert Tasks.text_to_speech == "text-to-speech"


def test_sambert_refuses_the_interpreters_we_refuse() -> None:
    model = tree("models/audio/tts/sambert_hifi.py")
    guards = [
        ast.literal_eval(node.comparators[0])
        for node in ast.walk(model)
        if isinstance(node, ast.Compare) and "version_info" in ast.unparse(node.left)
    ]
    assert guards == [(3, 11)]  # ImportError from 3.11 on; with ttsfrd's cp310 wheels that leaves 3.10
    assert REQUIRED_PYTHON < guards[0]


def test_sambert_reads_the_files_we_require() -> None:
    from modelscope.utils.constant import ModelFile

    model = tree("models/audio/tts/sambert_hifi.py")
    # configuration.json is how pipeline() learns the model type; SambertHifigan reads the rest itself.
    assert MODEL_FILES[0] == ModelFile.CONFIGURATION
    for required in MODEL_FILES[1:]:
        assert Path(required).name in constants(model), required
    assert "ttsfrd" in imported(model)
    assert any(name.startswith("kantts") for name in imported(tree("models/audio/tts/voice.py")))


def test_sambert_default_rate_and_forward_signature() -> None:
    model = tree("models/audio/tts/sambert_hifi.py")
    rate_calls = [
        node
        for node in ast.walk(model)
        if isinstance(node, ast.Call) and ast.unparse(node).startswith("kwargs.get('sample_rate'")
    ]
    assert [ast.literal_eval(call.args[1]) for call in rate_calls] == [DEFAULT_SAMPLE_RATE]
    sambert = next(n for n in model.body if isinstance(n, ast.ClassDef) and n.name == "SambertHifigan")
    forward = next(n for n in sambert.body if isinstance(n, ast.FunctionDef) and n.name == "forward")
    assert [a.arg for a in forward.args.args] == ["self", "text", "voice_name"]


def test_pipeline_passes_voice_and_returns_output_wav() -> None:
    pipeline = tree("pipelines/audio/text_to_speech_pipeline.py")
    forward = next(n for n in ast.walk(pipeline) if isinstance(n, ast.FunctionDef) and n.name == "forward")
    source = ast.unparse(forward)
    assert "forward_params.get('voice')" in source  # our call: pipeline(input=ssml, voice=name)
    assert "OutputKeys.OUTPUT_WAV" in source
    outputs = tree("outputs/outputs.py")
    assignments = {
        node.targets[0].id: node.value.value
        for node in ast.walk(outputs)
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
    }
    assert assignments["OUTPUT_WAV"] == "output_wav"
