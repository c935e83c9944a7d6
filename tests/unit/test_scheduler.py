"""Scheduler policy with a scripted engine: a real engine cannot be paused at will, and batching
must be exercised though the embedded LiteRT voice does not batch."""

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
import pytest

from tts_server.engines.base import Capabilities, EngineError, EngineInfo, InvalidInput, Segment, Voice
from tts_server.metrics import Metrics
from tts_server.scheduler import Chunk, Failure, QueueTimeout, Rejected, Scheduler


class ScriptedEngine:
    def __init__(self, batching: bool = True, max_batch: int = 4) -> None:
        self.info = EngineInfo(
            "scripted", "scripted-1", "numpy", "cpu", "fp32", 1000, ("zh",),
            (Voice("v", "V", "zh", "female"),), ("neutral",), Capabilities(batching, max_batch, True, False),
        )  # fmt: skip
        self.calls: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()

    def warm_up(self) -> None:
        pass

    def synthesize(self, batch: Sequence[Segment]) -> list[np.ndarray]:
        self.gate.wait(5)
        self.calls.append([s.text for s in batch])
        for s in batch:
            if s.text == "boom":
                raise EngineError("scripted failure")
            if s.text == "empty":
                raise InvalidInput("nothing")
        return [np.full(100, 0.1, np.float32) for _ in batch]


def segs(*texts: str) -> list[Segment]:
    return [Segment(t, "v") for t in texts]


async def drain_events(job) -> list:
    events = []
    while True:
        event = await asyncio.wait_for(job.events.get(), 5)
        events.append(event)
        if isinstance(event, Failure) or event.last:
            return events


def make(engine: ScriptedEngine, max_queue: int = 8, batch: int = 4, wait: float = 0.05) -> Scheduler:
    return Scheduler([engine], Metrics(), max_queue=max_queue, batch_size=batch, batch_wait_s=wait)


def test_jobs_are_batched_sentence_by_sentence() -> None:
    async def run() -> None:
        engine = ScriptedEngine()
        sched = make(engine)
        a = sched.submit(segs("a1", "a2", "a3"), 10)
        b = sched.submit(segs("b1"), 10)
        sched.start()
        ea, eb = await asyncio.gather(drain_events(a), drain_events(b))
        sched.stop()
        assert [e.index for e in ea] == [0, 1, 2] and ea[-1].last
        assert len(eb) == 1 and eb[0].last
        assert engine.calls[0] == ["a1", "b1"]  # continuous batching: both jobs in the first call
        assert engine.calls[1:] == [["a2"], ["a3"]]

    asyncio.run(run())


def test_non_batching_engine_runs_one_job_at_a_time() -> None:
    async def run() -> None:
        engine = ScriptedEngine(batching=False)
        sched = make(engine, batch=8)
        assert sched.batch_size == 1
        a = sched.submit(segs("a1", "a2"), 10)
        b = sched.submit(segs("b1"), 10)
        sched.start()
        await asyncio.gather(drain_events(a), drain_events(b))
        sched.stop()
        assert engine.calls == [["a1"], ["a2"], ["b1"]]

    asyncio.run(run())


def test_full_queue_rejects_with_retry_after() -> None:
    async def run() -> None:
        sched = make(ScriptedEngine(), max_queue=2)
        sched.submit(segs("x"), 10)
        sched.submit(segs("y"), 10)
        with pytest.raises(Rejected) as info:
            sched.submit(segs("z"), 10)
        assert info.value.status == 429 and info.value.retry_after >= 1

    asyncio.run(run())


def test_cancelled_queued_job_is_never_synthesized() -> None:
    async def run() -> None:
        engine = ScriptedEngine()
        sched = make(engine, batch=1)
        a = sched.submit(segs("a"), 10)
        b = sched.submit(segs("b"), 10)
        b.cancel()
        sched.start()
        await drain_events(a)
        assert await sched.wait_idle(5)
        sched.stop()
        assert engine.calls == [["a"]]
        assert sched.metrics.client_disconnects.labels("scripted", "queued")._value.get() == 1

    asyncio.run(run())


def test_cancelling_the_running_job_does_not_strand_the_queue() -> None:
    """A client leaving mid-synthesis must not park the worker while others wait (found by the KEDA
    live test: the queue gauge stayed at 3 after a load step's clients left, so KEDA never cooled down)."""

    async def run() -> None:
        engine = ScriptedEngine(batching=False)
        engine.gate.clear()
        sched = make(engine, batch=1)
        running = sched.submit(segs("r1", "r2"), 10)
        waiting = [sched.submit(segs(f"w{i}"), 10) for i in range(2)]
        sched.start()
        await asyncio.sleep(0.2)  # "r1" is inside the engine
        running.cancel()
        waiting[0].cancel()
        engine.gate.set()
        events = await drain_events(waiting[1])  # the live waiting job is served without a new submit
        assert events[-1].last
        assert await sched.wait_idle(5)
        sched.stop()
        assert engine.calls == [["r1"], ["w1"]]
        assert sched.metrics.queue_depth.labels("scripted")._value.get() == 0
        assert sched.metrics.in_flight.labels("scripted")._value.get() == 0

    asyncio.run(run())


def test_expired_job_gets_queue_timeout() -> None:
    async def run() -> None:
        engine = ScriptedEngine()
        sched = make(engine)
        job = sched.submit(segs("late"), timeout_s=0.0)
        await asyncio.sleep(0.01)
        sched.start()
        events = await drain_events(job)
        sched.stop()
        assert isinstance(events[0], Failure) and isinstance(events[0].error, QueueTimeout)
        assert engine.calls == []

    asyncio.run(run())


def test_one_bad_item_does_not_fail_its_batch_neighbours() -> None:
    async def run() -> None:
        engine = ScriptedEngine()
        sched = make(engine)
        good = sched.submit(segs("ok"), 10)
        bad = sched.submit(segs("boom"), 10)
        empty = sched.submit(segs("empty"), 10)
        sched.start()
        eg, eb, ee = await asyncio.gather(drain_events(good), drain_events(bad), drain_events(empty))
        sched.stop()
        assert isinstance(eg[0], Chunk)
        assert isinstance(eb[0].error, EngineError)
        assert isinstance(ee[0].error, InvalidInput)

    asyncio.run(run())


def test_drain_refuses_new_work_and_waits_for_accepted() -> None:
    async def run() -> None:
        engine = ScriptedEngine()
        engine.gate.clear()
        sched = make(engine)
        job = sched.submit(segs("a", "b"), 10)
        sched.start()
        sched.begin_drain()
        with pytest.raises(Rejected) as info:
            sched.submit(segs("c"), 10)
        assert info.value.status == 503
        assert not await sched.wait_idle(0.1)
        engine.gate.set()
        events = await drain_events(job)
        assert await sched.wait_idle(5)
        sched.stop()
        assert len(events) == 2

    asyncio.run(run())


def test_queue_gauges_track_waiting_and_active() -> None:
    async def run() -> None:
        engine = ScriptedEngine(batching=False)
        engine.gate.clear()
        sched = make(engine)
        jobs = [sched.submit(segs(f"j{i}"), 10) for i in range(3)]
        depth = sched.metrics.queue_depth.labels("scripted")
        assert depth._value.get() == 3
        sched.start()
        await asyncio.sleep(0.2)
        assert depth._value.get() == 2
        assert sched.metrics.in_flight.labels("scripted")._value.get() == 1
        engine.gate.set()
        for job in jobs:
            await drain_events(job)
        assert await sched.wait_idle(5)
        sched.stop()
        assert depth._value.get() == 0
        assert sched.metrics.in_flight.labels("scripted")._value.get() == 0

    asyncio.run(run())


def test_workers_share_one_queue_and_each_owns_an_engine() -> None:
    async def run() -> None:
        first, second = ScriptedEngine(batching=False), ScriptedEngine(batching=False)
        first.gate.clear()  # the first worker stays busy with its job
        sched = Scheduler([first, second], Metrics(), max_queue=8, batch_size=1, batch_wait_s=0)
        jobs = [sched.submit(segs(f"j{i}"), 10) for i in range(3)]
        sched.start()
        await asyncio.gather(drain_events(jobs[1]), drain_events(jobs[2]))
        assert len(first.calls) == 0 and sorted(c[0] for c in second.calls) == ["j1", "j2"]
        first.gate.set()
        await drain_events(jobs[0])
        assert await sched.wait_idle(5)
        sched.stop()
        assert first.calls == [["j0"]]

    asyncio.run(run())
