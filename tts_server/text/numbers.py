"""Reading Arabic numerals aloud in Mandarin, as pure functions."""

from __future__ import annotations

DIGITS = "零一二三四五六七八九"
_SMALL_UNITS = ["", "十", "百", "千"]
_BIG_UNITS = ["", "万", "亿", "万亿"]


def read_digits(digits: str, one: str = "一") -> str:
    """Digit by digit, as for years, phone numbers and codes ("2024" -> 二零二四)."""
    return "".join(one if d == "1" else DIGITS[int(d)] for d in digits if d.isdigit())


def _read_section(n: int) -> str:
    """0 < n < 10000, without the leading-ten shortening."""
    out: list[str] = []
    zero_pending = False
    for pos in range(3, -1, -1):
        d = (n // 10**pos) % 10
        if d == 0:
            if out:
                zero_pending = True
            continue
        if zero_pending:
            out.append("零")
            zero_pending = False
        out.append(DIGITS[d] + _SMALL_UNITS[pos])
    return "".join(out)


def read_integer(text: str) -> str:
    """Cardinal reading with 万/亿 grouping ("10086" -> 一万零八十六, "12" -> 十二)."""
    n = int(text)
    if n == 0:
        return "零"
    if n >= 10**16:
        return read_digits(text)
    sections: list[int] = []
    while n:
        sections.append(n % 10000)
        n //= 10000
    out: list[str] = []
    need_zero = False
    for idx in range(len(sections) - 1, -1, -1):
        sec = sections[idx]
        if sec == 0:
            need_zero = bool(out)
            continue
        if out and (need_zero or sec < 1000):
            out.append("零")
        out.append(_read_section(sec) + _BIG_UNITS[idx])
        need_zero = False
    result = "".join(out)
    # 10-19 at the start are read 十, 十一 ... rather than 一十, 一十一.
    if result.startswith("一十"):
        result = result[1:]
    # A leading 2 before 千/万/亿 is said 两 (两千, 两万三千), elsewhere 二.
    if result[:2] in ("二千", "二万", "二亿"):
        result = "两" + result[1:]
    return result


def read_number(text: str) -> str:
    """Integer or decimal, optionally signed ("-3.50" -> 负三点五零)."""
    sign = ""
    if text[:1] == "-":
        sign, text = "负", text[1:]
    elif text[:1] == "+":
        sign, text = "正", text[1:]
    whole, _, frac = text.partition(".")
    whole = whole.replace(",", "")
    spoken = read_integer(whole) if whole else "零"
    if frac:
        spoken += "点" + read_digits(frac)
    return sign + spoken


def liang(spoken: str) -> str:
    """二 becomes 两 before a measure word when it is the whole number (2个 -> 两个)."""
    return "两" if spoken == "二" else spoken
