"""Every Prometheus metric the server exports, defined once, in a registry owned by each app.

Labels are bounded enums only (engine, route template, status code, reason, phase, kind): never a
voice id, request id or text, which would explode series counts. The operator's autoscaling reads
tts_queue_depth and tts_requests_in_flight, so both are updated on every enqueue/start/finish/cancel path.
"""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from tts_server import __version__

_LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)
# Up to a minute: a p95 guard must see a queue backing up, not a 10 s ceiling.
_TTFA_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 2, 4, 10, 20, 30, 60)
_RTF_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 4)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
REJECT_REASONS = ("queue_full", "draining", "not_ready", "queue_timeout", "body_too_large")


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.queue_depth = Gauge(
            "tts_queue_depth", "Requests accepted and waiting for a worker", ["engine"], registry=r
        )
        self.in_flight = Gauge(
            "tts_requests_in_flight",
            "Requests a worker is synthesizing right now",
            ["engine"],
            registry=r,
        )
        self.requests = Counter(
            "tts_requests", "HTTP requests by route template and status", ["route", "code"], registry=r
        )
        self.request_duration = Histogram(
            "tts_request_duration_seconds",
            "Arrival to last byte",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttfa = Histogram(
            "tts_time_to_first_audio_seconds",
            "Arrival to the first audio byte handed to the transport",
            ["engine", "route"],
            buckets=_TTFA_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "tts_queue_wait_seconds",
            "Enqueue to start of synthesis",
            ["engine"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rtf = Histogram(
            "tts_real_time_factor", "Synthesis wall time / audio seconds, per engine call",
            ["engine", "device"], buckets=_RTF_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "tts_batch_size", "Segments per engine call", ["engine"], buckets=_BATCH_BUCKETS, registry=r
        )
        self.audio_seconds = Counter("tts_audio_seconds", "Seconds of audio produced", ["engine"], registry=r)
        self.input_characters = Counter(
            "tts_input_characters", "Characters synthesized, after normalization", ["engine"], registry=r
        )
        self.rejected = Counter("tts_rejected", "Requests refused before synthesis", ["reason"], registry=r)
        self.client_disconnects = Counter(
            "tts_client_disconnects",
            "Requests whose client left before the end",
            ["engine", "phase"],
            registry=r,
        )
        self.engine_errors = Counter("tts_engine_errors", "Engine failures", ["engine", "kind"], registry=r)
        self.ready = Gauge("tts_engine_ready", "1 after warm-up synthesized audio; 0 loading or draining",
                           ["engine"], registry=r)  # fmt: skip
        self.draining = Gauge("tts_draining", "1 after SIGTERM, while accepted work finishes", registry=r)
        self.warmup_seconds = Gauge(
            "tts_warmup_duration_seconds", "Engine load + warm-up time", ["engine"], registry=r
        )
        self.engine_info = Info("tts_engine", "The engine this server runs", registry=r)
        self.build_info = Info("tts_build", "Server build", registry=r)
        # Series that exist from the start, so rate() and alerts see zeros instead of gaps.
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        self.build_info.info({"version": __version__, "python": platform.python_version()})

    def for_engine(self, engine: str, device: str) -> None:
        """Creates the engine's labelled series at zero before the first request."""
        for gauge in (self.queue_depth, self.in_flight, self.ready):
            gauge.labels(engine).set(0)
        for phase in ("queued", "streaming"):
            self.client_disconnects.labels(engine, phase)
        self.audio_seconds.labels(engine)
        self.input_characters.labels(engine)
        self.draining.set(0)
