"""Sentence splitting: long input streams sentence by sentence, each within what models were trained on."""

from __future__ import annotations

import re

_SENTENCE_END = "。！？；!?;…\n"
_CLAUSE_END = "，、：,:"
_SPEAKABLE = re.compile(r"[\w]", re.UNICODE)


def _pieces(text: str, marks: str) -> list[str]:
    out: list[str] = []
    current = ""
    for ch in text:
        current += ch
        if ch in marks:
            out.append(current)
            current = ""
    if current:
        out.append(current)
    return out


def _pack(clauses: list[str], max_chars: int) -> list[str]:
    """Greedily joins clauses up to max_chars; a clause longer than that is cut hard."""
    out: list[str] = []
    current = ""
    for clause in clauses:
        while len(clause) > max_chars:
            if current:
                out.append(current)
                current = ""
            out.append(clause[:max_chars])
            clause = clause[max_chars:]
        if current and len(current) + len(clause) > max_chars:
            out.append(current)
            current = ""
        current += clause
    if current:
        out.append(current)
    return out


def split_sentences(text: str, max_chars: int = 60) -> list[str]:
    """Split normalized text into speakable segments of at most max_chars characters.

    Sentences end at 。！？； (and newlines); a sentence longer than max_chars is split at its
    commas, and only as a last resort mid-clause. Segments without a letter or digit are dropped.
    """
    segments: list[str] = []
    for sentence in _pieces(text, _SENTENCE_END):
        sentence = sentence.strip()
        if not _SPEAKABLE.search(sentence):
            continue
        if len(sentence) <= max_chars:
            segments.append(sentence)
        else:
            segments.extend(s.strip() for s in _pack(_pieces(sentence, _CLAUSE_END), max_chars))
    return [s for s in segments if _SPEAKABLE.search(s)]
