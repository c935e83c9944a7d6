"""Which torch device an engine runs on: CUDA when it works, else CPU (for device=auto).

`torch.cuda.is_available()` only says a driver and a device are visible. A pod can still be unable
to run a kernel there: a driver older than the wheel's CUDA, a GPU architecture the wheel has no
kernels for, a GPU in exclusive-process mode that another process holds, or memory exhausted by a
neighbour. So the device is chosen by running one small kernel on it. With device=auto a failing
GPU means serving on CPU, loudly (logged, reported in /v1/models and the tts_engine metric), rather
than crash-looping a pod that could serve; with device=cuda it is a refusal to start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tts_server.engines.base import EngineUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cuda" or "cpu"
    fallback_reason: str | None = None  # why auto chose CPU although a GPU is visible

    def details(self) -> dict[str, str]:
        """What an engine adds to its EngineInfo.extra (shown in /v1/models)."""
        return {"device_fallback": self.fallback_reason} if self.fallback_reason else {}


def cuda_failure() -> str | None:
    """None when a kernel runs on the current CUDA device; else what went wrong, in one line."""
    import torch

    try:
        probe = torch.arange(256, dtype=torch.float32, device="cuda")
        if float((probe * 2).sum().item()) != 65280.0:
            return "a test kernel on the GPU returned a wrong result"
    except (RuntimeError, AssertionError) as exc:  # AssertionError: torch built without CUDA
        return " ".join(str(exc).split())[:300] or type(exc).__name__
    return None


def choose_device(requested: str, engine: str) -> DeviceChoice:
    import torch

    if requested not in ("auto", "cuda", "cpu"):
        raise EngineUnavailable(f"engine {engine!r}: unknown device {requested!r} (auto, cuda or cpu)")
    if requested == "cpu":
        return DeviceChoice("cpu")
    if not torch.cuda.is_available():
        if requested == "cuda":
            raise EngineUnavailable(f"engine {engine!r}: device 'cuda' requested, no CUDA device is visible")
        return DeviceChoice("cpu")
    failure = cuda_failure()
    if failure is None:
        return DeviceChoice("cuda")
    if requested == "cuda":
        raise EngineUnavailable(f"engine {engine!r}: device 'cuda' requested, but CUDA fails: {failure}")
    log.warning("engine %s: a GPU is visible but CUDA fails (%s); serving on CPU", engine, failure)
    return DeviceChoice("cpu", f"CUDA visible but failing: {failure}")
