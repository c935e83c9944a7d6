"""Admission queue and the worker threads that own engine instances (one thread per instance).

Requests become Jobs of sentence Segments. Each worker keeps up to `batch_size` jobs active and
each engine call takes the next segment of every active job (continuous batching at sentence
granularity), so a long text never blocks the batch and every job streams sentence by sentence.
Workers share one bounded queue. Inference never runs on the event loop: results cross back with
call_soon_threadsafe.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
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


@dataclass(eq=False)
class _Worker:
    engine: Engine
    active: list[Job] = field(default_factory=list)
    busy_since: float | None = None
    thread: threading.Thread | None = None


class Scheduler:
    def __init__(
        self,
        engines: Sequence[Engine],
        metrics: Metrics,
        max_queue: int,
        batch_size: int,
        batch_wait_s: float,
    ) -> None:
        self.engine = engines[0]
        self.metrics = metrics
        caps = self.engine.info.capabilities
        self.batch_size = max(1, min(batch_size, caps.max_batch_size if caps.batching else 1))
        self.max_queue = max_queue
        self.batch_wait_s = batch_wait_s
        self._label = self.engine.info.name
        self._workers = [_Worker(engine) for engine in engines]
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._draining = False
        self._stopping = False
        self._idle = threading.Event()
        self._idle.set()
        self._job_seconds = 1.0  # EWMA of a job's service time, for Retry-After

    @property
    def workers(self) -> int:
        return len(self._workers)

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        for index, worker in enumerate(self._workers):
            worker.thread = threading.Thread(
                target=self._run, args=(worker,), name=f"engine-{self._label}-{index}", daemon=True
            )
            worker.thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for worker in self._workers:
            if worker.thread is not None:
                worker.thread.join(timeout=5)

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
        """Longest time any engine call has been running (0 when idle): a hung engine shows here."""
        now = time.monotonic()
        return max((now - w.busy_since for w in self._workers if w.busy_since is not None), default=0.0)

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
            self._cond.notify_all()
        return job

    def _retry_after(self) -> int:
        backlog = len(self._waiting) + sum(len(w.active) for w in self._workers)
        capacity = self.batch_size * len(self._workers)
        return int(min(60, max(1, math.ceil(backlog * self._job_seconds / capacity))))

    def queue_depth(self) -> int:
        return len(self._waiting)

    # --- worker thread ---------------------------------------------------------------------
    def _admit(self, worker: _Worker) -> None:
        """Moves waiting jobs into a worker's active set; drops cancelled and expired ones unworked."""
        now = time.monotonic()
        while self._waiting and len(worker.active) < self.batch_size:
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
            worker.active.append(job)
        self.metrics.queue_depth.labels(self._label).set(len(self._waiting))

    def _finish(self, worker: _Worker, job: Job) -> None:
        job.done = True
        worker.active.remove(job)
        self.metrics.in_flight.labels(self._label).dec()
        if job.started_at is not None:
            elapsed = time.monotonic() - job.started_at
            self._job_seconds = 0.8 * self._job_seconds + 0.2 * elapsed

    def _next_batch(self, worker: _Worker) -> list[Job] | None:
        with self._cond:
            while True:
                if self._stopping:
                    return None
                had_active = bool(worker.active)
                self._admit(worker)
                # Starting from idle with room left in the batch: wait briefly for company.
                if (
                    not had_active
                    and worker.active
                    and len(worker.active) < self.batch_size
                    and self.batch_wait_s > 0
                ):
                    self._cond.wait(self.batch_wait_s)
                    self._admit(worker)
                cancelled = [j for j in worker.active if j.cancelled]
                for job in cancelled:
                    self.metrics.client_disconnects.labels(self._label, "streaming").inc()
                    self._finish(worker, job)
                if worker.active:
                    return list(worker.active)
                # Dropping cancelled jobs freed the batch: admit the waiting ones now; nothing else
                # would wake this worker before the next submit.
                if cancelled and self._waiting:
                    continue
                if not self._waiting and not any(w.active for w in self._workers):
                    self._idle.set()
                self._cond.wait()

    @staticmethod
    def _synthesize(engine: Engine, jobs: list[Job]) -> list[np.ndarray | Exception]:
        segments = [job.segments[job.next_index] for job in jobs]
        try:
            return list(engine.synthesize(segments))
        except Exception as exc:
            if len(segments) == 1:
                return [exc]
            # One bad item must not fail its neighbours: retry one by one to find it.
            results: list[np.ndarray | Exception] = []
            for segment in segments:
                try:
                    results.append(engine.synthesize([segment])[0])
                except Exception as item_exc:
                    results.append(item_exc)
            return results

    def _run(self, worker: _Worker) -> None:
        rate = self.engine.info.sample_rate
        while True:
            jobs = self._next_batch(worker)
            if jobs is None:
                return
            worker.busy_since = started = time.monotonic()
            results = self._synthesize(worker.engine, jobs)
            elapsed = time.monotonic() - started
            worker.busy_since = None
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
                        self._finish(worker, job)
                        continue
                    self.metrics.input_characters.labels(self._label).inc(len(segment.text))
                    job.next_index += 1
                    last = job.next_index == len(job.segments)
                    job._emit(Chunk(job.next_index - 1, result, last))
                    if last:
                        self._finish(worker, job)
                # Finishing frees batch slots: another worker may be waiting for this.
                self._cond.notify_all()
