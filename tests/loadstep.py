"""A load step against a real tts-server: N closed-loop clients posting long syntheses until stopped.

Shared by the KEDA live tests and benchmarks/scaling_reaction.py. With fewer server workers than
clients, the surplus requests wait in the server's queue, which is what `tts_queue_depth` reports.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx

SENTENCE = "我们正在测试离线中文语音合成的速度和质量，请大家多多指教。"


class Load:
    """`with Load(url, clients) as load:` runs the clients in a background thread; leaving stops them."""

    def __init__(self, url: str, clients: int, repeats: int = 10) -> None:
        self.url, self.clients, self.repeats = url, clients, repeats
        self.codes: list[int] = []
        self.started_at = 0.0  # time.time() of the step
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _client(self, http: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            response = await http.post("/tts", json={"text": SENTENCE * self.repeats})
            self.codes.append(response.status_code)

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=300) as http:
            self.started_at = time.time()
            tasks = [asyncio.create_task(self._client(http)) for _ in range(self.clients)]
            while not self._stop.is_set():
                await asyncio.sleep(0.05)
            # Cancelling drops the connections of in-flight requests; the server sees the disconnects.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self) -> Load:
        self._thread.start()
        while not self.started_at:
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def __exit__(self, *_: object) -> None:
        self.stop()
