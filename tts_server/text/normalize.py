"""Chinese text normalization: numbers, dates, times, money, percentages and units become words.

Every rule is a pure regex substitution applied in a fixed order: the more specific patterns
(dates before ranges, percentages before plain numbers) must run first because each one consumes
the digits it reads. Latin letters are left in place: engines decide how to voice them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from tts_server.text.numbers import liang, read_digits, read_integer, read_number

_NUM = r"\d+(?:,\d{3})*(?:\.\d+)?"

_CURRENCY = {"¥": "元", "￥": "元", "$": "美元", "€": "欧元", "£": "英镑"}
_UNITS = {
    "km/h": "公里每小时",
    "km": "公里",
    "kg": "公斤",
    "cm": "厘米",
    "mm": "毫米",
    "ml": "毫升",
    "m²": "平方米",
    "㎡": "平方米",
    "m": "米",
}
_MEASURE_WORDS = "个只本位次种条件天台辆张名家所块杯瓶岁双份周层项场点倍"
_SYMBOLS = {
    "+": "加",
    "=": "等于",
    "&": "和",
    "@": "艾特",
    "×": "乘以",
    "÷": "除以",
    "°": "度",
    "%": "百分号",
}
_PUNCT = {",": "，", "!": "！", "?": "？", ";": "；", ":": "：", "(": "（", ")": "）"}

Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]


def _date(m: re.Match[str]) -> str:
    year, month, day = m.group(1), int(m.group(2)), int(m.group(3))
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return m.group(0).replace("-", " ").replace("/", " ")
    return f"{read_digits(year)}年{read_integer(str(month))}月{read_integer(str(day))}日"


def _year(m: re.Match[str]) -> str:
    return read_digits(m.group(1)) + "年"


def _time(m: re.Match[str]) -> str:
    hour, minute, second = int(m.group(1)), int(m.group(2)), m.group(3)
    out = read_integer(str(hour)) + "点"
    if minute:
        out += ("零" if minute < 10 else "") + read_integer(str(minute)) + "分"
    if second is not None and int(second):
        out += read_integer(str(int(second))) + "秒"
    return out


def _percent(m: re.Match[str]) -> str:
    return "百分之" + read_number(m.group(1))


def _temperature(m: re.Match[str]) -> str:
    value = m.group(1)
    prefix = ""
    if value.startswith("-"):
        prefix, value = "零下", value[1:]
    return prefix + read_number(value) + "摄氏度"


def _currency(m: re.Match[str]) -> str:
    return read_number(m.group(2)) + (m.group(3) or "") + _CURRENCY[m.group(1)]


def _fraction(m: re.Match[str]) -> str:
    return read_integer(m.group(2)) + "分之" + read_integer(m.group(1))


def _range(m: re.Match[str]) -> str:
    return read_number(m.group(1)) + "到" + read_number(m.group(2))


def _unit(m: re.Match[str]) -> str:
    return read_number(m.group(1)) + _UNITS[m.group(2)]


def _phone(m: re.Match[str]) -> str:
    return read_digits(m.group(0), one="幺")  # read_digits skips the dash of an area code


def _digit_string(m: re.Match[str]) -> str:
    return read_digits(m.group(0))


def _counted(m: re.Match[str]) -> str:
    return liang(read_integer(m.group(1))) + m.group(2)


def _signed(m: re.Match[str]) -> str:
    return m.group(1) + read_number(m.group(2))


def _number(m: re.Match[str]) -> str:
    return read_number(m.group(0))


_RULES: list[Rule] = [
    (re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:日|号)?"), _date),
    (re.compile(r"(?<!\d)(\d{4})(?=年)年"), _year),
    (re.compile(r"(?<!\d)([01]?\d|2[0-4]):([0-5]\d)(?::([0-5]\d))?(?!\d)"), _time),
    (re.compile(rf"([-+]?{_NUM})\s*%"), _percent),
    (re.compile(rf"([-]?{_NUM})\s*(?:°C|℃)"), _temperature),
    (re.compile(rf"([¥￥$€£])\s*({_NUM})(万|亿)?"), _currency),
    (re.compile(r"(?<![\d/])(\d+)/(\d+)(?![\d/])"), _fraction),
    (re.compile(r"(?<!\d)0\d{2,3}-\d{7,8}(?!\d)"), _phone),
    (re.compile(rf"({_NUM})\s*[-~～]\s*({_NUM})"), _range),
    (re.compile(rf"({_NUM})\s*(km/h|km|kg|cm|mm|ml|m²|㎡|m)(?![A-Za-z])"), _unit),
    (re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)"), _phone),
    (re.compile(r"(?<![\d.])(?:0\d{2,}|\d{13,})(?![\d.])"), _digit_string),
    (re.compile(rf"(?<![\d.])(\d+)([{_MEASURE_WORDS}])"), _counted),
    (re.compile(r"(^|[^\dA-Za-z])([-+]\d+(?:\.\d+)?)"), _signed),
    (re.compile(_NUM), _number),
]


def normalize(text: str) -> str:
    """Return text a Mandarin frontend can read: digits and symbols spelled out as Chinese words."""
    text = unicodedata.normalize("NFKC", text).replace("−", "-")
    text = re.sub(r"\s+", " ", text).strip()
    for pattern, replace in _RULES:
        text = pattern.sub(replace, text)
    for symbol, word in _SYMBOLS.items():
        text = text.replace(symbol, word)
    for ascii_mark, zh_mark in _PUNCT.items():
        text = text.replace(ascii_mark, zh_mark)
    # A full stop that survived the number rules ends a sentence.
    text = re.sub(r"\.(?!\w)|\.(?=\s)", "。", text)
    return text
