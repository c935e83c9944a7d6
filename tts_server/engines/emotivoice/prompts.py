"""Emotion names and free-text instructions -> the style prompt EmotiVoice's style encoder reads.

The style encoder was trained on Chinese labels (data/youdao/text/emotion): 普通 生气 开心 惊讶 悲伤 厌恶
恐惧. Free text also works (it is embedded by the same BERT), so OpenAI-style `instructions` pass
through as written; an emotion name maps onto its trained label.
"""

from __future__ import annotations

import io

EMOTION_PROMPTS: dict[str, str] = {
    "neutral": "普通",
    "happy": "开心",
    "sad": "悲伤",
    "angry": "生气",
    "surprised": "惊讶",
    "disgusted": "厌恶",
    "fearful": "恐惧",
}
# The style encoder's BERT takes at most 512 tokens; a prompt is a short description, so longer
# instructions are cut well before that instead of failing inside the model.
MAX_PROMPT_CHARS = 200


def style_prompt(emotion: str, instructions: str | None = None) -> str:
    """The prompt for one segment: instructions when given, else the trained label of the emotion."""
    if instructions is not None:
        text = " ".join(instructions.split())
        if text:
            return text[:MAX_PROMPT_CHARS]
    try:
        return EMOTION_PROMPTS[emotion]
    except KeyError:
        raise ValueError(f"emotion {emotion!r} has no EmotiVoice prompt") from None


def parse_labels(text: str) -> dict[str, int]:
    """Label file (one label a line) -> {label: line index}, exactly as upstream indexes it.

    Upstream builds its speaker/token maps with enumerate(f.readlines()) and strip(), so the index is
    the line number (blank lines count) and a repeated label keeps its last line.
    """
    return {line.strip(): index for index, line in enumerate(_lines(text))}


def speaker_ids(text: str) -> tuple[str, ...]:
    """Speaker names from data/youdao/text/speaker2, in file order, blank lines left out."""
    return tuple(name for name in parse_labels(text) if name)


def count_labels(text: str) -> int:
    """How many classes a label file declares (upstream counts every line, blank or not)."""
    return len(_lines(text))


def _lines(text: str) -> list[str]:
    # readlines() semantics (split on newline only), which is what upstream's counts are based on.
    return io.StringIO(text).readlines()
