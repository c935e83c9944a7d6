"""Voicefleet TTS server: FastAPI routes over a batching scheduler and pluggable engines."""

__version__ = "0.1.0"
