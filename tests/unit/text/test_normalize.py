import re

import pytest

from tts_server.text import normalize


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("今天是2024-03-05。", "今天是二零二四年三月五日。"),
        ("2024/3/5发布", "二零二四年三月五日发布"),
        ("我在2024年毕业", "我在二零二四年毕业"),
        ("会议在14:30开始", "会议在十四点三十分开始"),
        ("9:05出发", "九点零五分出发"),
        ("8:00:30整", "八点三十秒整"),
        ("价格¥1,299.50", "价格一千二百九十九点五零元"),
        ("只要$5", "只要五美元"),
        ("约3.5万元", "约三点五万元"),
        ("折扣12.5%", "折扣百分之十二点五"),
        ("气温-3℃", "气温零下三摄氏度"),
        ("25°C左右", "二十五摄氏度左右"),
        ("1/3的人", "三分之一的人"),
        ("他有3-5年经验", "他有三到五年经验"),
        ("时速100km/h", "时速一百公里每小时"),
        ("拨打13812345678", "拨打幺三八幺二三四五六七八"),
        ("座机010-12345678", "座机零幺零幺二三四五六七八"),
        ("我有2个苹果", "我有两个苹果"),
        ("第3名", "第三名"),
        ("共10086人", "共一万零八十六人"),
        ("温度为−5.5度", "温度为负五点五度"),
        ("１２３", "一百二十三"),
        ("a+b=c", "a加b等于c"),
        ("你好,世界!", "你好，世界！"),
    ],
)
def test_normalize_table(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_latin_is_kept_for_the_engine_to_voice() -> None:
    assert normalize("GPU使用率达到95%") == "GPU使用率达到百分之九十五"


@pytest.mark.parametrize("raw", ["3.14159", "2024年3月5日14:30，价格¥99.9，折扣5%，13912345678"])
def test_no_digits_survive(raw: str) -> None:
    assert not re.search(r"\d", normalize(raw))
