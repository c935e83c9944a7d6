"""Baseline for server_load.py: a TTS service built the way simple published ones are.

One synchronous handler (stdlib http.server, one request at a time, like a Flask app behind a global
lock) that runs the same engine and text frontend as tts-server for each request and returns the
whole WAV. No queue bound, no batching, no streaming, no backpressure.
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np

from tts_server.audio.encode import encode_whole
from tts_server.engines.baker.litert import SAMPLE_RATE, BakerLiteRTEngine
from tts_server.engines.base import Segment
from tts_server.text import normalize, split_sentences


def serve(port: int, threads: int) -> None:
    engine = BakerLiteRTEngine(threads=threads)
    engine.warm_up()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            sentences = split_sentences(normalize(body["text"]))
            waves = engine.synthesize([Segment(s, "baker") for s in sentences])
            data = encode_whole("wav", np.concatenate(waves), SAMPLE_RATE)
            self.send_response(200)
            self.send_header("content-type", "audio/wav")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    HTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    serve(args.port, args.threads)
