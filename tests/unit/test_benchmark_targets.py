"""The GPU verdicts benchmarks/baker_engines.py writes (gpu_targets), from a table of figures."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("baker_engines", ROOT / "benchmarks" / "baker_engines.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(table: dict[str, dict[int, float]]) -> list[dict]:
    return [{"engine": e, "batch": b, "audio_s_per_s": v} for e, by in table.items() for b, v in by.items()]


def test_targets_per_cuda_engine() -> None:
    rtf = [
        {"engine": "torch-cuda-fp32", "rtf_median": 0.012},
        {"engine": "torch-cuda-fp16", "rtf_median": 0.006},
        {"engine": "torch-cpu-fp32", "rtf_median": 0.05},
    ]
    throughput = _rows(
        {
            "torch-cuda-fp32": {1: 100.0, 8: 350.0, 64: 600.0},
            "torch-cuda-fp16": {1: 150.0, 8: 900.0, 64: 899.0},
            "torch-cpu-fp32": {1: 25.0, 8: 26.0},
        }
    )
    assert _bench().gpu_targets(rtf, throughput) == {
        # 350 / 100 = 3.5: batching misses 4x; fp32 has no half-precision verdict.
        "torch-cuda-fp32": {
            "rtf_batch1": 0.012,
            "rtf_ok": False,
            "batch8_over_batch1": 3.5,
            "batching_ok": False,
        },
        # Half vs fp32 compares each one's best batch: 900 / 600.
        "torch-cuda-fp16": {
            "rtf_batch1": 0.006,
            "rtf_ok": True,
            "batch8_over_batch1": 6.0,
            "batching_ok": True,
            "over_fp32": 1.5,
            "half_ok": True,
        },
    }


def test_no_batch_ratio_without_both_batch_sizes() -> None:
    rtf = [{"engine": "torch-cuda-bf16", "rtf_median": 0.01}]
    targets = _bench().gpu_targets(rtf, _rows({"torch-cuda-bf16": {1: 80.0, 4: 200.0}}))
    assert targets == {"torch-cuda-bf16": {"rtf_batch1": 0.01, "rtf_ok": True}}
