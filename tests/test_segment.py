import math

import jieba
import pytest

from classifier.segment import Segmenter, default_engine, userdict_sha256
from classifier.text import normalize_many
from classifier.training import load_corpus
from conftest import SHARED


@pytest.mark.parametrize("engine", ["rjieba", "jieba"])
def test_userdict_terms_are_single_words(engine):
    words = Segmenter(engine).cut("支持七天无理由吗，有运费险吗，可以仅退款吗，什么时候揽收")
    for term in ("七天无理由", "运费险", "仅退款", "揽收"):
        assert term in words


def test_global_tokenizers_are_untouched():
    import rjieba

    Segmenter("jieba"), Segmenter("rjieba")
    assert jieba.dt.FREQ.get("七天无理由", 0) == 0
    assert not rjieba.has_word("七天无理由")


def test_whitespace_is_dropped():
    assert " " not in Segmenter().cut("好的 谢谢")


def test_rjieba_is_the_default_engine_when_installed():
    assert default_engine() == "rjieba" and Segmenter().engine == "rjieba"
    with pytest.raises(ValueError, match="unknown segmentation engine"):
        Segmenter("nope")


def test_userdict_hash_is_stable():
    assert userdict_sha256() == userdict_sha256() and len(userdict_sha256()) == 64


def _log_probability(words: list[str], tokenizer) -> float:
    """The log-probability jieba's DAG search maximises for a cut (HMM off)."""
    total = math.log(tokenizer.total)
    return sum(math.log(tokenizer.FREQ.get(w) or 1) - total for w in words)


def test_rjieba_reproduces_jieba_on_the_corpus_and_the_dev_set():
    """Both engines cut every message of the training corpus and the real dev set alike, except where two
    cuts are equally probable under the dictionary (a tie such as 嘀 嘀嘀 / 嘀嘀 嘀), which is checked."""
    texts = load_corpus()["text"].tolist()
    dev = SHARED / "eval" / "dev_real.csv"
    if dev.exists():
        import pandas as pd

        texts += pd.read_csv(dev, dtype=str, keep_default_na=False)["text"].tolist()
    reference, fast = Segmenter("jieba"), Segmenter("rjieba")
    ties = 0
    for text in normalize_many(texts):
        expected, got = reference.cut(text), fast.cut(text)
        if expected != got:
            assert "".join(expected) == "".join(got)
            assert _log_probability(got, reference._tokenizer) == pytest.approx(
                _log_probability(expected, reference._tokenizer), abs=1e-9), text
            ties += 1
    assert ties <= len(texts) // 1000  # ties are rare: repeated characters (好好好好, 啊啊啊)
