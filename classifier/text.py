"""Normalise raw buyer text before segmentation.

``normalize`` is the first step of the one path every message takes, in training and
in prediction alike:

1. lone surrogates (undecodable bytes, half of a broken pair) to U+FFFD, Unicode NFKC
   (full-width letters, digits and punctuation become half-width), HTML tags removed (some
   exports hold HTML), control characters and whitespace runs to one space;
2. traditional to simplified Chinese (OpenCC ``t2s``);
3. repair of look-alike characters seen in scraped text (``resources/lookalikes.tsv``);
4. Latin letters to lower case (placeholders stay upper case);
5. collapsing of repeated punctuation;
6. masking of URLs, phone numbers, order numbers and money amounts into placeholder
   tokens (``URL``, ``PHONE``, ``ORDER``, ``MONEY``): what matters is that one is there.

The function is idempotent: ``normalize(normalize(t)) == normalize(t)``. ``normalize_many``
gives the same results for a chunk of messages, with one OpenCC call and one pass of each
pattern over the whole chunk.
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from importlib import resources

PLACEHOLDERS = ("URL", "PHONE", "ORDER", "MONEY")

_URL = re.compile(
    r"(?:https?://|www\.)[^\s\u4e00-\u9fff，。！？]+"
    r"|(?<![a-z0-9.-])[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|cn|net)(?:/[^\s\u4e00-\u9fff，。！？]*)?"
)
_HTML_TAG = re.compile(r"<[a-zA-Z/!][^<>]{0,200}>")
_PHONE = re.compile(r"(?<![0-9])(?:\+?86[- ]?)?1[3-9][0-9](?:[- ]?[0-9]{4}){2}(?![0-9])")
_ORDER = re.compile(r"(?<![0-9])[0-9]{10,}(?![0-9])")
_MONEY = re.compile(
    r"[¥￥][ ]?[0-9]+(?:\.[0-9]+)?(?:元|块钱?)?"
    r"|(?<![0-9.])[0-9]+(?:\.[0-9]+)?[ ]?(?:元|块钱?|rmb)"
)
_REPEATED_PUNCT = re.compile(r"([!?.,~。！？，、…~～=\-_*#])\1+")
_SPACES = re.compile(r"\s+")
_BLANKS = re.compile(r" +")
_UPPER = re.compile(r"[A-Z]+")
SURROGATES = re.compile("[\ud800-\udfff]")  # lone surrogates; no encoder takes one: OpenCC and UTF-32 would raise
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\ufeff]")
_SEPARATOR = "\n"  # never left inside a message after step 1, so it can join a chunk


@lru_cache(maxsize=1)
def _lookalikes() -> dict[int, str]:
    """The look-alike repair table as a ``str.translate`` map."""
    table: dict[int, str] = {}
    text = resources.files("classifier.resources").joinpath("lookalikes.tsv").read_text("utf-8")
    for line in text.splitlines():
        if line and not line.startswith("#"):
            wrong, right = line.split("\t")[:2]
            table[ord(wrong)] = right
    return table


def _lower_unless_placeholder(match: re.Match) -> str:
    word = match.group()
    return word if word in PLACEHOLDERS else word.lower()


@lru_cache(maxsize=1)
def _converter():
    import opencc

    return opencc.OpenCC("t2s")


def repair(text: str) -> tuple[str, bool]:
    """``text`` with every lone surrogate as U+FFFD, and whether it held one.

    Text gets lone surrogates from bytes not valid in its encoding (read with ``surrogateescape``)
    or from an escape of half a surrogate pair (JSON ``"\\ud83d"``); no encoder accepts them."""
    if SURROGATES.search(text):
        return SURROGATES.sub("\ufffd", text), True
    return text, False


def _clean(text: str) -> str:
    """Step 1: surrogates, NFKC, tags, control characters and whitespace (one line, no separator left)."""
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", repair(text)[0])
    return _SPACES.sub(" ", _CONTROL.sub(" ", _HTML_TAG.sub(" ", text)))


def _rest(text: str) -> str:
    """Steps 2 to 6 on one message or on a chunk joined by ``_SEPARATOR`` (no pattern crosses it)."""
    text = _converter().convert(text)
    text = _UPPER.sub(_lower_unless_placeholder, text.translate(_lookalikes()))
    text = _REPEATED_PUNCT.sub(r"\1", text)
    text = _URL.sub(" URL ", text)
    text = _PHONE.sub(" PHONE ", text)
    text = _ORDER.sub(" ORDER ", text)
    return _MONEY.sub(" MONEY ", text)


def normalize(text: str) -> str:
    """Return the normalised form of one message (see the module docstring)."""
    return _BLANKS.sub(" ", _rest(_clean(text))).strip()


def normalize_many(texts: list[str]) -> list[str]:
    """``[normalize(t) for t in texts]``, computed over the whole chunk at once."""
    if not texts:
        return []
    joined = _rest(_SEPARATOR.join(map(_clean, texts)))
    return [_BLANKS.sub(" ", piece).strip() for piece in joined.split(_SEPARATOR)]
