import pytest

from tts_server.engines.baker.assets import load_assets
from tts_server.engines.baker.g2p import LETTER_PINYIN, BakerG2P


@pytest.fixture(scope="module")
def g2p() -> BakerG2P:
    assets = load_assets()
    return BakerG2P(assets.pinyin_dict, assets.symbol_to_id)


def test_frames_with_silence_and_joins_syllables(g2p: BakerG2P) -> None:
    assert g2p.phonemes("中文").symbols == ["sil", "zh", "ong1", "#0", "^", "uen2", "sil"]


def test_clause_pause_becomes_prosodic_break(g2p: BakerG2P) -> None:
    symbols = g2p.phonemes("你好，世界").symbols
    assert symbols[symbols.index("ao3") + 1] == "#3"


@pytest.mark.parametrize(("text", "letters"), [("GPU", "GPU"), ("用AI做", "AI"), ("iPhone", "IPHONE")])
def test_latin_letters_are_spelled_not_dropped(g2p: BakerG2P, text: str, letters: str) -> None:
    result = g2p.phonemes(text)
    assert result.skipped == []
    chinese = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")
    letter_syllables = sum(len(LETTER_PINYIN[ch]) for ch in letters)
    toned = [s for s in result.symbols if s[-1].isdigit() and not s.startswith("#")]
    assert len(toned) == chinese + letter_syllables


def test_every_letter_syllable_exists_in_the_voice(g2p: BakerG2P) -> None:
    for letter in LETTER_PINYIN:
        assert g2p.phonemes(letter).skipped == [], letter


def test_polyphone_fix_and_erhua(g2p: BakerG2P) -> None:
    symbols = g2p.phonemes("很长").symbols
    assert "ch" in symbols and "zh" not in symbols
    assert "er5" in g2p.phonemes("一会儿").symbols


def test_unvoiceable_symbols_are_reported(g2p: BakerG2P) -> None:
    result = g2p.phonemes("好😀")
    assert result.skipped == ["😀"]


def test_ids_end_with_eos(g2p: BakerG2P) -> None:
    ids = g2p.ids(g2p.phonemes("好").symbols)
    assert ids[-1] == load_assets().symbol_to_id["eos"]
