import jieba

from classifier.segment import Segmenter


def test_userdict_terms_are_single_words():
    words = Segmenter().cut("支持七天无理由吗，有运费险吗，可以仅退款吗，什么时候揽收")
    for term in ("七天无理由", "运费险", "仅退款", "揽收"):
        assert term in words


def test_global_jieba_is_untouched():
    Segmenter()
    assert "七天无理由" not in jieba.dt.FREQ or jieba.dt.FREQ.get("七天无理由", 0) == 0


def test_whitespace_is_dropped():
    assert " " not in Segmenter().cut("好的 谢谢")
