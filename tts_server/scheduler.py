"""Admission queue and the one worker thread that owns an engine.

Requests become Jobs of sentence Segments. The worker keeps up to `batch_size` jobs active and
each engine call takes the next segment of every active job (continuous batching at sentence
granularity), so a long text never blocks the batch and every job streams sentence by sentence.
Inference never runs on the event loop: results cross back with call_soon_threadsafe.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from tts_server.engines.base import Engine, EngineError, InvalidInput, Segment
from tts_server.metrics import Metrics

log = logging.getLogger(__name__)


class Rejected(Exception):
    """Not accepted; nothing was queued. code/status map directly to the HTTP error."""

    def __init__(self, message: str, code: str, status: int, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.retry_after = retry_after


@dataclass
class Chunk:
    index: int
    wave: np.ndarray
    last: bool


@dataclass
class Failure:
    error: Exception


@dataclass
class Job:
    segments: list[Segment]
    deadline: float
    loop: asyncio.AbstractEventLoop
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    events: asyncio.Queue[Chunk | Failure] = field(default_factory=asyncio.Queue)
    enqueued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    next_index: int = 0
    cancelled: bool = False
    done: bool = False

    def cancel(self) -> None:
        """Called from the event loop when the client goes away; the worker drops the rest."""
        self.cancelled = True

    def _emit(self, event: Chunk | Failure) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)


class QueueTimeout(Exception):
    """The job's deadline passed while it waited in the queue."""


class Scheduler:
    def __init__(
        self,
        engine: Engine,
        metrics: Metrics,
        max_queue: int,
        batch_size: int,
        batch_wait_s: float,
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        caps = engine.info.capabilities
        self.batch_size = max(1, min(batch_size, caps.max_batch_size if caps.batching else 1))
        self.max_queue = max_queue
        self.batch_wait_s = batch_wait_s
        self._label = engine.info.name
        self._waiting: deque[Job] = deque()
        self._active: list[Job] = []
        self._cond = threading.Condition()
        self._draining = False
        self._stopping = False
        self._idle = threading.Event()
        self._idle.set()
        self._busy_since: float | None = None
        self._job_seconds = 1.0  # EWMA of a job's service time, for Retry-After
        self._thread = threading.Thread(target=self._run, name=f"engine-{self._label}", daemon=True)

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def begin_drain(self) -> None:
        with self._cond:
            self._draining = True

    @property
    def draining(self) -> bool:
        return self._draining

    async def wait_idle(self, timeout: float) -> bool:
        """True when every accepted job has finished within timeout seconds."""
        return await asyncio.to_thread(self._idle.wait, timeout)

    def stuck_for(self) -> float:
        """Seconds the current engine call has been running (0 when idle): a hung engine shows here."""
        since = self._busy_since
        return 0.0 if since is None else time.monotonic() - since

    # --- admission (event loop) ------------------------------------------------------------
    def submit(self, segments: list[Segment], timeout_s: float) -> Job:
        job = Job(segments=segments, deadline=time.monotonic() + timeout_s, loop=asyncio.get_running_loop())
        with self._cond:
            if self._draining:
                self.metrics.rejected.labels("draining").inc()
                raise Rejected("server is draining; retry on another replica", "draining", 503, retry_after=1)
            if len(self._waiting) >= self.max_queue:
                self.metrics.rejected.labels("queue_full").inc()
                raise Rejected(
                    f"queue is full ({self.max_queue} waiting); retry later",
                    "rate_limit_exceeded",
                    429,
                    retry_after=self._retry_after(),
                )
            self._waiting.append(job)
            self._idle.clear()
            self.metrics.queue_depth.labels(self._label).set(len(self._waiting))
            self._cond.notify()
        return job

    def _retry_after(self) -> int:
        backlog = len(self._waiting) + len(self._active)
        return int(min(60, max(1, math.ceil(backlog * self._job_seconds / self.batch_size))))

    def queue_depth(self) -> int:
        return len(self._waiting)

    # --- worker thread ---------------------------------------------------------------------
    def _admit(self) -> None:
        """Moves waiting jobs into the active set; drops cancelled and expired ones before any work."""
        now = time.monotonic()
        while self._waiting and len(self._active) < self.batch_size:
            job = self._waiting.popleft()
            if job.cancelled:
                self.metrics.client_disconnects.labels(self._label, "queued").inc()
                job.done = True
                continue
            if now > job.deadline:
                self.metrics.rejected.labels("queue_timeout").inc()
                job.done = True
                job._emit(Failure(QueueTimeout(f"waited {now - job.enqueued_at:.1f}s in the queue")))
                continue
            job.started_at = now
            self.metrics.queue_wait.labels(self._label).observe(now - job.enqueued_at)
            self.metrics.in_flight.labels(self._label).inc()
            self._active.append(job)
        self.metrics.queue_depth.labels(self._label).set(len(self._waiting))

    def _finish(self, job: Job) -> None:
        job.done = True
        self._active.remove(job)
        self.metrics.in_flight.labels(self._label).dec()
        if job.started_at is not None:
            elapsed = time.monotonic() - job.started_at
            self._job_seconds = 0.8 * self._job_seconds + 0.2 * elapsed

    def _next_batch(self) -> list[Job] | None:
        with self._cond:
            while True:
                if self._stopping:
                    return None
                had_active = bool(self._active)
                self._admit()
                # Starting from idle with room left in the batch: wait briefly for company.
                if (
                    not had_active
                    and self._active
                    and len(self._active) < self.batch_size
                    and self.batch_wait_s > 0
                ):
                    self._cond.wait(self.batch_wait_s)
                    self._admit()
                for job in [j for j in self._active if j.cancelled]:
                    self.metrics.client_disconnects.labels(self._label, "streaming").inc()
                    self._finish(job)
                if self._active:
                    return list(self._active)
                if not self._waiting:
                    self._idle.set()
                    self._cond.wait()

    def _synthesize(self, jobs: list[Job]) -> list[np.ndarray | Exception]:
        segments = [job.segments[job.next_index] for job in jobs]
        try:
            return list(self.engine.synthesize(segments))
        except Exception as exc:
            if len(segments) == 1:
                return [exc]
            # One bad item must not fail its neighbours: retry one by one to find it.
            results: list[np.ndarray | Exception] = []
            for segment in segments:
                try:
                    results.append(self.engine.synthesize([segment])[0])
                except Exception as item_exc:
                    results.append(item_exc)
            return results

    def _run(self) -> None:
        rate = self.engine.info.sample_rate
        while True:
            jobs = self._next_batch()
            if jobs is None:
                return
            self._busy_since = started = time.monotonic()
            results = self._synthesize(jobs)
            elapsed = time.monotonic() - started
            self._busy_since = None
            audio_s = sum(r.size for r in results if isinstance(r, np.ndarray)) / rate
            self.metrics.batch_size.labels(self._label).observe(len(jobs))
            if audio_s > 0:
                self.metrics.rtf.labels(self._label, self.engine.info.device).observe(elapsed / audio_s)
                self.metrics.audio_seconds.labels(self._label).inc(audio_s)
            with self._cond:
                for job, result in zip(jobs, results, strict=True):
                    segment = job.segments[job.next_index]
                    if isinstance(result, Exception):
                        kind = (
                            result.kind
                            if isinstance(result, EngineError)
                            else ("invalid_input" if isinstance(result, InvalidInput) else "runtime")
                        )
                        self.metrics.engine_errors.labels(self._label, kind).inc()
                        log.warning("job %s failed on segment %d: %s", job.id, job.next_index, result)
                        job._emit(Failure(result))
                        self._finish(job)
                        continue
                    self.metrics.input_characters.labels(self._label).inc(len(segment.text))
                    job.next_index += 1
                    last = job.next_index == len(job.segments)
                    job._emit(Chunk(job.next_index - 1, result, last))
                    if last:
                        self._finish(job)
