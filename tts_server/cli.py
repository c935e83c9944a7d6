"""`tts-server`: run the HTTP server (settings from flags, then TTS_* env, then defaults).

`tts-server fetch-model --source huggingface|modelscope --id ID --dest D` (or `--manifest M --dest D`)
downloads a model instead (see tts_server.fetch and tts_server.hub).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from types import FrameType
from typing import Any, Literal, get_args, get_origin

import uvicorn
from pydantic import ValidationError

from tts_server.engines.base import EngineUnavailable
from tts_server.settings import Settings

log = logging.getLogger("tts_server")


def parse_args(argv: list[str] | None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="tts-server", description="Voicefleet TTS server")
    fields = Settings.model_fields
    names = ("host", "port", "engine", "device", "precision", "workers", "threads", "log_level")
    names += ("max_queue", "batch_size", "batch_wait_ms", "batch_mode")
    names += ("max_text_length", "request_timeout_s", "drain_timeout_s")
    names += ("model_dir", "model_work_dir", "emotivoice_checkout", "emotivoice_weights")
    for name in names:
        field = fields[name]
        kind = field.annotation if field.annotation in (int, float, str) else None
        choices = get_args(field.annotation) if get_origin(field.annotation) is Literal else None
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=kind or str,
            choices=choices,
            default=None,
            help=field.description,
        )
    args = parser.parse_args(argv)
    return {k: v for k, v in vars(args).items() if v is not None}


class DrainingServer(uvicorn.Server):
    """First SIGTERM/SIGINT drains (not ready, no new work, accepted work finishes), then exits."""

    def __init__(self, config: uvicorn.Config, drain_timeout_s: float) -> None:
        super().__init__(config)
        self.drain_timeout_s = drain_timeout_s
        self._drain_task: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain_task is not None or self.should_exit:
            # A second signal means "now": skip the drain.
            super().handle_exit(sig, frame)
            return
        log.info("received %s: draining for up to %.0fs", signal.Signals(sig).name, self.drain_timeout_s)
        self._drain_task = asyncio.get_event_loop().create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        from tts_server.app import drain

        await drain(self.config.app.state.voicefleet, self.drain_timeout_s)
        self.should_exit = True


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["fetch-model"]:
        from tts_server.fetch import main as fetch_main

        raise SystemExit(fetch_main(argv[1:]))
    try:
        settings = Settings(**parse_args(argv))
    except ValidationError as exc:
        # Environment variables are validated here too; name them the way the user wrote them.
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"tts-server: invalid settings: {problems}", file=sys.stderr)
        raise SystemExit(2) from exc
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from tts_server.app import create_app
    from tts_server.engines.registry import create_engines

    try:
        engines = create_engines(settings)
    except EngineUnavailable as exc:
        print(f"tts-server: cannot start engine {settings.engine!r}: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    app = create_app(settings, engines)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=max(1, int(settings.drain_timeout_s)),
        access_log=False,
    )
    DrainingServer(config, settings.drain_timeout_s).run()


if __name__ == "__main__":
    main()
