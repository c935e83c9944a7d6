"""Decoding helpers for tests: every served format back to float samples with PyAV."""

from __future__ import annotations

import io
import struct

import av
import numpy as np


def decode(data: bytes, fmt: str, pcm_rate: int = 24000) -> tuple[np.ndarray, int]:
    if fmt == "pcm":
        return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0, pcm_rate
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        frames = [f.to_ndarray().reshape(-1, f.samples)[0] for f in container.decode(stream)]
        rate = stream.rate
    samples = np.concatenate(frames).astype(np.float32)
    if samples.dtype.kind == "i" or np.abs(samples).max() > 2:
        samples = samples / 32768.0
    return samples, rate


def wav_fields(data: bytes) -> dict[str, int]:
    (riff_size,) = struct.unpack("<I", data[4:8])
    channels, rate = struct.unpack("<HI", data[22:28])
    (bits,) = struct.unpack("<H", data[34:36])
    (data_size,) = struct.unpack("<I", data[40:44])
    return {"riff_size": riff_size, "channels": channels, "rate": rate, "bits": bits, "data_size": data_size}
