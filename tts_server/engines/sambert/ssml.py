"""The SSML that selects an emotion in Sambert's emotional voices, built so user text stays text.

ttsfrd (Sambert's frontend) parses the whole input as SSML when it starts with <speak>, so text that
contains '<' or '&' must be escaped, or a user could close the emotion element and inject markup.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape, quoteattr

# Our emotion names -> the categories the emotional Sambert voices were trained with.
EMOTION_CATEGORIES: dict[str, str] = {
    "neutral": "neutral",
    "happy": "happy",
    "sad": "sad",
    "angry": "angry",
    "surprised": "surprise",
    "fearful": "fear",
    "disgusted": "hate",
}
# XML 1.0 forbids these code points outright; escaping cannot make them legal, so they are dropped.
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def escape_text(text: str) -> str:
    return escape(_ILLEGAL_XML.sub("", text))


def build_ssml(text: str, emotion: str, intensity: float = 1.0) -> str:
    """<speak><emotion category=... intensity=...>text</emotion></speak>; neutral is plain escaped SSML."""
    try:
        category = EMOTION_CATEGORIES[emotion]
    except KeyError:
        raise ValueError(f"emotion {emotion!r} has no Sambert category") from None
    if not 0.01 <= intensity <= 2.0:
        raise ValueError(f"emotion intensity {intensity} is outside 0.01..2.0")
    body = escape_text(text)
    if category == "neutral":
        return f"<speak>{body}</speak>"
    attrs = f"category={quoteattr(category)} intensity={quoteattr(f'{intensity:.2f}')}"
    return f"<speak><emotion {attrs}>{body}</emotion></speak>"
