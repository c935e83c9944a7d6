import pytest

from tts_server.text.numbers import liang, read_digits, read_integer, read_number


@pytest.mark.parametrize(
    ("digits", "spoken"),
    [
        ("0", "零"),
        ("7", "七"),
        ("10", "十"),
        ("12", "十二"),
        ("20", "二十"),
        ("105", "一百零五"),
        ("110", "一百一十"),
        ("1001", "一千零一"),
        ("2000", "两千"),
        ("10086", "一万零八十六"),
        ("22000", "两万二千"),
        ("100000", "十万"),
        ("100010", "十万零一十"),
        ("1000000", "一百万"),
        ("20000000", "两千万"),
        ("100000000", "一亿"),
        ("300000005", "三亿零五"),
        ("123456789", "一亿二千三百四十五万六千七百八十九"),
    ],
)
def test_read_integer(digits: str, spoken: str) -> None:
    assert read_integer(digits) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("3.14", "三点一四"),
        ("-5", "负五"),
        ("+2.5", "正二点五"),
        ("0.05", "零点零五"),
        ("1,299.50", "一千二百九十九点五零"),
    ],
)
def test_read_number(text: str, spoken: str) -> None:
    assert read_number(text) == spoken


def test_read_digits_and_liang() -> None:
    assert read_digits("2024") == "二零二四"
    assert read_digits("110", one="幺") == "幺幺零"
    assert liang("二") == "两"
    assert liang("十二") == "十二"
