"""Word segmentation with a private ``jieba.Tokenizer`` and our e-commerce dictionary.

The global ``jieba`` tokenizer is never touched: each ``Segmenter`` owns its tokenizer,
loaded with ``resources/userdict.txt`` (dispute and shop terms such as 七天无理由,
运费险, 仅退款, 价保, 揽收).
"""
from __future__ import annotations

import logging
from importlib import resources

import jieba

USERDICT = "userdict.txt"


class Segmenter:
    """Cut normalised text into words.

    >>> Segmenter().cut("支持七天无理由吗")
    ['支持', '七天无理由', '吗']
    """

    def __init__(self) -> None:
        logging.getLogger("jieba").setLevel(logging.WARNING)
        self._tokenizer = jieba.Tokenizer()
        with resources.files("classifier.resources").joinpath(USERDICT).open("rb") as fh:
            self._tokenizer.load_userdict(fh)

    def cut(self, text: str) -> list[str]:
        """The words of ``text``, without whitespace tokens.

        jieba's HMM guess at unseen words is off: it halves the speed and, with character
        n-grams beside the words, does not help accuracy (see benchmarks/README.md).
        """
        return [word for word in self._tokenizer.cut(text, HMM=False) if not word.isspace()]
