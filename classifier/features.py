"""Turn a normalised, segmented message into the terms the linear model weighs.

Three kinds of terms, kept apart by a prefix:

* ``w:`` word unigrams and bigrams from jieba (``w:不发货``, ``w:还 不发货``);
* ``c:`` character n-grams of the normalised text (robust to typos and unseen words);
* ``m:`` the message's form: a length bucket (``m:len7``) and whether it asks a question
  (``m:q``). Short questions are rarely disputes; on real chat turns these two cut false
  alarms by a third (data/README.md).

Training and prediction both build on ``ngrams``, so they cannot drift apart.
"""
from __future__ import annotations

import re

from .text import PLACEHOLDERS

WORD_PREFIX = "w:"
CHAR_PREFIX = "c:"
META_PREFIX = "m:"
PREFIXES = (WORD_PREFIX, CHAR_PREFIX, META_PREFIX)
LENGTH_BUCKETS = (2, 4, 7, 12, 20, 35, 60)
QUESTION_MARKS = ("?", "吗", "呢", "么", "吧")
# In character n-grams a placeholder (URL, PHONE, ORDER, MONEY) is one symbol, not its letters.
_SYMBOLS = {name: chr(0xE000 + i) for i, name in enumerate(PLACEHOLDERS)}
_PLACEHOLDER = re.compile("|".join(PLACEHOLDERS))


def ngrams(text: str, words: list[str], char_ngrams: tuple[int, int] = (1, 2)) -> tuple[list[str], ...]:
    """Word grams, character n-grams and form terms of one message (unprefixed, with repeats)."""
    word_grams = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
    chars = _PLACEHOLDER.sub(lambda m: _SYMBOLS[m.group()], text).replace(" ", "")
    low, high = char_ngrams
    char_grams = [chars[i : i + n] for n in range(low, high + 1) for i in range(len(chars) - n + 1)]
    length = next((b for b in LENGTH_BUCKETS if len(chars) <= b), "more")
    form = [f"len{length}"] + (["q"] if any(q in chars for q in QUESTION_MARKS) else [])
    return word_grams, char_grams, form


def terms(text: str, words: list[str], char_ngrams: tuple[int, int] = (1, 2)) -> list[str]:
    """All terms of one message, prefixed by kind (``w:`` / ``c:`` / ``m:``), with repeats."""
    return [prefix + g for prefix, grams in zip(PREFIXES, ngrams(text, words, char_ngrams)) for g in grams]


def display(term: str) -> str:
    """A term as a person reads it: the prefix dropped, word bigrams joined, placeholders named."""
    shown = term[2:].replace(" ", "")
    for name, symbol in _SYMBOLS.items():
        shown = shown.replace(symbol, name)
    return shown
