"""Normalized Mandarin text -> Baker phoneme symbols (initial + toned final, with prosody marks).

Latin letters are spelled the way Mandarin speakers say them ("GPU" -> 基 批 优), because the Baker
phoneme set has no English phones; nothing in the input is dropped without a trace: characters we
cannot voice are returned in `skipped` so callers can log or report them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pypinyin import Style, lazy_pinyin

# Letter names as Mandarin syllables (tone-numbered pinyin), as commonly read in Chinese speech.
LETTER_PINYIN: dict[str, tuple[str, ...]] = {
    "A": ("ei1",), "B": ("bi4",), "C": ("xi1",), "D": ("di4",), "E": ("yi4",),
    "F": ("ai2", "fu5"), "G": ("ji4",), "H": ("ai1", "qi1"), "I": ("ai4",), "J": ("jie4",),
    "K": ("kei4",), "L": ("ai2", "le5"), "M": ("ai2", "mu5"), "N": ("en1",), "O": ("ou1",),
    "P": ("pi1",), "Q": ("qiu1",), "R": ("a1", "er5"), "S": ("ai2", "si1"), "T": ("ti4",),
    "U": ("you1",), "V": ("wei1",), "W": ("da2", "bu5", "liu5"), "X": ("ai2", "ke4", "si1"),
    "Y": ("wai1",), "Z": ("zei4",),
}  # fmt: skip

# Syllables pypinyin may emit that the Baker inventory spells differently.
_SYLLABLE_ALIASES = {"n": "en", "ng": "en", "m": "mu", "hm": "hen", "r": "er"}
# Baker has no phrase entry for some common adverb+长 pairs; pypinyin reads 长 as zhang3 there.
_PHRASE_FIXES = {"很长": ("hen3", "chang2"), "太长": ("tai4", "chang2"), "更长": ("geng4", "chang2")}

_TOKEN = re.compile(r"(?P<zh>[\u3400-\u9fff]+)|(?P<latin>[A-Za-z]+)|(?P<pause>[，、：；,;:…—])|(?P<other>\S)")
_SILENT_MARKS = set("。！？!?.（）()《》“”\"'‘’「」【】[]-·~_/\\|")


@dataclass
class Phonemes:
    symbols: list[str]
    skipped: list[str] = field(default_factory=list)


def _syllables_zh(run: str) -> list[str]:
    syllables = lazy_pinyin(run, style=Style.TONE3, neutral_tone_with_five=True, errors="ignore")
    for phrase, fixed in _PHRASE_FIXES.items():
        start = run.find(phrase)
        while start != -1:
            syllables[start : start + len(phrase)] = list(fixed)
            start = run.find(phrase, start + len(phrase))
    return syllables


def _split_tone(syllable: str) -> tuple[str, str]:
    if syllable[-1:].isdigit():
        return syllable[:-1], syllable[-1]
    return syllable, "5"


class BakerG2P:
    def __init__(self, pinyin_dict: Mapping[str, tuple[str, str]], symbol_to_id: Mapping[str, int]) -> None:
        self._pinyin = pinyin_dict
        self._ids = symbol_to_id

    def _syllable_phones(self, syllable: str) -> list[str] | None:
        base, tone = _split_tone(syllable)
        base = _SYLLABLE_ALIASES.get(base, base)
        if base in self._pinyin:
            initial, final = self._pinyin[base]
            return [initial, final + tone]
        # Erhua written into one syllable (huar4): the base syllable followed by a neutral er.
        if base.endswith("r") and base[:-1] in self._pinyin:
            initial, final = self._pinyin[base[:-1]]
            return [initial, final + tone, "er5"]
        return None

    def phonemes(self, text: str) -> Phonemes:
        """Phoneme symbols framed by `sil`, #0 between syllables and #3 at clause pauses."""
        words: list[list[str]] = []  # syllable groups; a pause mark is its own group
        skipped: list[str] = []
        for match in _TOKEN.finditer(text):
            kind, token = match.lastgroup, match.group(0)
            if kind == "zh":
                words.append(_syllables_zh(token))
            elif kind == "latin":
                words.append([s for letter in token.upper() for s in LETTER_PINYIN[letter]])
            elif kind == "pause":
                words.append(["#3"])
            elif token not in _SILENT_MARKS:
                skipped.append(token)
        symbols = ["sil"]
        for group in words:
            for syllable in group:
                if syllable == "#3":
                    if symbols[-1] == "#0":
                        symbols[-1] = "#3"
                    continue
                phones = self._syllable_phones(syllable)
                if phones is None:
                    skipped.append(syllable)
                    continue
                symbols.extend(phones)
                symbols.append("#0")
        while symbols[-1] in ("#0", "#3"):
            symbols.pop()
        symbols.append("sil")
        return Phonemes(symbols, skipped)

    def ids(self, symbols: list[str]) -> list[int]:
        return [self._ids[s] for s in symbols] + [self._ids["eos"]]
