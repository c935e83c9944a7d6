"""Device choice: CUDA only where a kernel really runs; auto falls back to CPU and says why."""

from __future__ import annotations

import pytest
import torch

from tts_server.engines.base import EngineUnavailable
from tts_server.engines.devices import DeviceChoice, choose_device, cuda_failure

CUDA = torch.cuda.is_available()


def test_cpu_is_cpu_without_touching_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: pytest.fail("cpu must not look at CUDA"))
    assert choose_device("cpu", "x") == DeviceChoice("cpu")


def test_unknown_device_is_refused() -> None:
    with pytest.raises(EngineUnavailable, match="unknown device 'gpu'"):
        choose_device("gpu", "x")


def test_auto_and_cuda_on_this_machine() -> None:
    if CUDA:
        assert cuda_failure() is None
        assert choose_device("auto", "x") == choose_device("cuda", "x") == DeviceChoice("cuda")
        return
    assert choose_device("auto", "x") == DeviceChoice("cpu")  # no GPU is not a fallback
    with pytest.raises(EngineUnavailable, match="no CUDA device is visible"):
        choose_device("cuda", "x")


@pytest.mark.skipif(CUDA, reason="needs a machine whose CUDA cannot run a kernel")
def test_visible_but_failing_cuda(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the probe itself is real
    failure = cuda_failure()
    assert failure and "NVIDIA driver" in failure and "\n" not in failure
    choice = choose_device("auto", "baker")
    assert choice.device == "cpu" and choice.fallback_reason == f"CUDA visible but failing: {failure}"
    assert "serving on CPU" in caplog.text
    with pytest.raises(EngineUnavailable, match="but CUDA fails"):
        choose_device("cuda", "baker")
