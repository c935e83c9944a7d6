"""Encoders for every served format, usable whole or as a stream of per-sentence chunks.

Streaming rules (each one a bug seen in published TTS servers): a WAV stream carries exactly one
header whose size fields say "unknown" (0xFFFFFFFF), never a header per chunk; compressed formats
are produced by one encoder/muxer for the whole stream so frames and containers stay continuous.
"""

from __future__ import annotations

import io
import struct
from typing import Protocol

import av
import numpy as np

from tts_server.audio.resample import to_pcm16

FORMATS = ("wav", "pcm", "mp3", "flac", "opus", "aac")
CONTENT_TYPES = {
    "wav": "audio/wav",
    "pcm": "audio/pcm",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "opus": "audio/ogg",
    "aac": "audio/aac",
}
# format -> (container, codec)
_CODECS = {
    "mp3": ("mp3", "libmp3lame"),
    "flac": ("flac", "flac"),
    "opus": ("ogg", "libopus"),
    "aac": ("adts", "aac"),
}
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
_UNKNOWN_SIZE = 0xFFFFFFFF


class Encoder(Protocol):
    content_type: str

    def encode(self, wave: np.ndarray) -> bytes: ...

    def finish(self) -> bytes: ...


def wav_header(sample_rate: int, data_bytes: int | None) -> bytes:
    """44-byte PCM s16 mono header; data_bytes None writes the 'unknown length' sizes used for streams."""
    data_size = _UNKNOWN_SIZE if data_bytes is None else data_bytes
    riff_size = _UNKNOWN_SIZE if data_bytes is None else 36 + data_bytes
    return (
        b"RIFF" + struct.pack("<I", riff_size) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
        + b"data" + struct.pack("<I", data_size)
    )  # fmt: skip


class PcmEncoder:
    content_type = CONTENT_TYPES["pcm"]

    def encode(self, wave: np.ndarray) -> bytes:
        return to_pcm16(wave).tobytes()

    def finish(self) -> bytes:
        return b""


class WavStreamEncoder(PcmEncoder):
    content_type = CONTENT_TYPES["wav"]

    def __init__(self, sample_rate: int) -> None:
        self._header: bytes | None = wav_header(sample_rate, None)

    def encode(self, wave: np.ndarray) -> bytes:
        head, self._header = self._header or b"", None
        return head + super().encode(wave)

    def finish(self) -> bytes:
        head, self._header = self._header or b"", None
        return head


class _Sink(io.RawIOBase):
    """A write-only, non-seekable file so muxers emit bytes in order, as they would to a socket."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self._chunks = b"".join(self._chunks), []
        return out


class CodecEncoder:
    def __init__(self, fmt: str, sample_rate: int) -> None:
        container_format, codec = _CODECS[fmt]
        self.content_type = CONTENT_TYPES[fmt]
        self._rate = sample_rate
        self._sink = _Sink()
        self._container = av.open(self._sink, mode="w", format=container_format)
        codec_rate = sample_rate
        if fmt == "opus" and sample_rate not in _OPUS_RATES:
            codec_rate = 48000
        self._stream = self._container.add_stream(codec, rate=codec_rate, layout="mono")
        self._pts = 0

    def _mux(self, frame: av.AudioFrame | None) -> bytes:
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        return self._sink.take()

    def encode(self, wave: np.ndarray) -> bytes:
        if wave.size == 0:
            return b""
        frame = av.AudioFrame.from_ndarray(to_pcm16(wave).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self._rate
        frame.pts = self._pts
        self._pts += wave.size
        return self._mux(frame)

    def finish(self) -> bytes:
        tail = self._mux(None)
        self._container.close()
        return tail + self._sink.take()


def stream_encoder(fmt: str, sample_rate: int) -> Encoder:
    if fmt == "pcm":
        return PcmEncoder()
    if fmt == "wav":
        return WavStreamEncoder(sample_rate)
    return CodecEncoder(fmt, sample_rate)


def encode_whole(fmt: str, wave: np.ndarray, sample_rate: int) -> bytes:
    """The complete file; WAV gets exact sizes since the length is known."""
    if fmt == "wav":
        pcm = to_pcm16(wave).tobytes()
        return wav_header(sample_rate, len(pcm)) + pcm
    encoder = stream_encoder(fmt, sample_rate)
    return encoder.encode(wave) + encoder.finish()
