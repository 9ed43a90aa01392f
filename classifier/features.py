"""Turn a normalised, segmented message into the terms the linear model weighs.

Two kinds of terms, kept apart by a prefix:

* ``w:`` word unigrams and bigrams from jieba (``w:不发货``, ``w:还 不发货``);
* ``c:`` character n-grams of the normalised text (robust to typos and unseen words).

Training and prediction call the same ``terms`` function, so they cannot drift apart.
"""
from __future__ import annotations

import re

from .text import PLACEHOLDERS

WORD_PREFIX = "w:"
CHAR_PREFIX = "c:"
# In character n-grams a placeholder (URL, PHONE, ORDER, MONEY) is one symbol, not its letters.
_SYMBOLS = {name: chr(0xE000 + i) for i, name in enumerate(PLACEHOLDERS)}
_PLACEHOLDER = re.compile("|".join(PLACEHOLDERS))


def terms(text: str, words: list[str], char_ngrams: tuple[int, int] = (1, 3)) -> list[str]:
    """All word and character n-gram terms of one message (with repeats)."""
    out = [WORD_PREFIX + w for w in words]
    out += [f"{WORD_PREFIX}{a} {b}" for a, b in zip(words, words[1:])]
    chars = _PLACEHOLDER.sub(lambda m: _SYMBOLS[m.group()], text).replace(" ", "")
    low, high = char_ngrams
    for n in range(low, high + 1):
        out += [CHAR_PREFIX + chars[i : i + n] for i in range(len(chars) - n + 1)]
    return out


def display(term: str) -> str:
    """A term as a person reads it: the prefix dropped, word bigrams joined, placeholders named."""
    shown = term[2:].replace(" ", "")
    for name, symbol in _SYMBOLS.items():
        shown = shown.replace(symbol, name)
    return shown
