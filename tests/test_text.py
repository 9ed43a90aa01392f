import pytest

from classifier.text import normalize, normalize_many


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("ＡＢＣ１２３", "abc123"),                       # full-width to half-width, lower case
        ("還不發貨", "还不发货"),                          # traditional to simplified
        ("比洳严偅嘚问题，每佽都这样", "比如严重的问题,每次都这样"),  # look-alike repair
        ("什么情况！！！？？？", "什么情况!?"),              # repeated punctuation
        ("  好的 \t\n 谢谢  ", "好的 谢谢"),                 # whitespace
        ("订单号 3345678901234567 还没到", "订单号 ORDER 还没到"),
        ("打我电话13812345678", "打我电话 PHONE"),
        ("退我199元", "退我 MONEY"),
        ("花了￥99.5买的", "花了 MONEY 买的"),
        ("看这个 https://item.taobao.com/x?id=1 链接", "看这个 URL 链接"),
        ("iPhone 15 Pro 256G", "iphone 15 pro 256g"),
    ],
)
def test_normalize_examples(raw, expected):
    assert normalize(raw) == expected


def test_control_characters_and_nul_become_space():
    assert normalize("坏\x00了\x07") == "坏 了"


def test_placeholders_survive_a_second_pass():
    once = normalize("电话13812345678 订单12345678901234")
    assert once == "电话 PHONE 订单 ORDER"
    assert normalize(once) == once


def test_rejects_non_string():
    with pytest.raises(TypeError):
        normalize(None)


def test_lone_surrogates_become_replacement_characters():
    assert normalize("\ud83d 假货\udcff") == "\ufffd 假货\ufffd"
    assert normalize_many(["\udc80還沒發貨", "好的"]) == ["\ufffd还没发货", "好的"]
