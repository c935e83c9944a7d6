"""Text frontend shared by engines: Chinese normalization and sentence splitting."""

from tts_server.text.normalize import normalize
from tts_server.text.split import split_sentences

__all__ = ["normalize", "split_sentences"]
