from tts_server.text import split_sentences


def test_splits_at_sentence_ends_and_keeps_marks() -> None:
    assert split_sentences("你好。今天好吗？很好！") == ["你好。", "今天好吗？", "很好！"]


def test_long_sentence_split_at_commas_within_limit() -> None:
    text = "，".join(["这是一个比较长的分句"] * 12) + "。"
    segments = split_sentences(text, max_chars=30)
    assert len(segments) > 1
    assert all(len(s) <= 30 for s in segments)
    assert "".join(segments) == text


def test_unpunctuated_run_is_cut_hard() -> None:
    segments = split_sentences("啊" * 130, max_chars=50)
    assert [len(s) for s in segments] == [50, 50, 30]


def test_drops_segments_with_nothing_to_say() -> None:
    assert split_sentences("。。。！？\n\n") == []
    assert split_sentences("好。……。\n再见") == ["好。", "再见"]
