"""From raw messages to the sparse rows the linear model weighs: one code path for training and prediction.

``Analyzer`` turns a chunk of raw messages into ``Terms`` (normalise, segment, n-grams, form);
``Vectorizer`` maps terms to columns and weighs them (TF-IDF over capped term counts, L2-normalised rows)
into ``SparseRows``, a CSR matrix held as three NumPy arrays. Training hands those arrays to
scikit-learn as a SciPy matrix; prediction multiplies them with NumPy alone, so a cold
``predict`` never pays for importing SciPy or scikit-learn.

Four kinds of terms, kept apart by a prefix in the saved vocabulary:

* ``w:`` word unigrams and bigrams (``w:不发货``, ``w:还 不发货``);
* ``c:`` character n-grams of the normalised text (robust to typos and unseen words);
* ``m:`` the message's form: a length bucket (``m:len7``), whether it asks (``m:q``), makes a
  request (``m:r``) or says that a problem has happened (``m:p``: 还没, 一直, 到现在, 说好的…);
* ``x:`` each word crossed with that form (``x:q|发票`` asks about an invoice, ``x:p|发票``
  says the invoice has not come): topic words mean a dispute only in a problem statement.
"""
from __future__ import annotations

import bisect
import re
from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .segment import Segmenter
from .text import PLACEHOLDERS, normalize_many

WORD, CHAR, FORM, CROSS = "w:", "c:", "m:", "x:"
KINDS = (WORD, CHAR, FORM, CROSS)
LENGTH_BUCKETS = (2, 4, 7, 12, 20, 35, 60)

# Cues of the message's form, matched on the normalised text.
QUESTION = re.compile(r"[?吗呢么]|怎么|如何|什么时候|多久|几天|哪天|能不能|可不可以|能否|是否|有没有|会不会|要不要|请问|咋")
REQUEST = re.compile(r"请|麻烦|帮我|帮忙|给我|尽快|赶紧|快点|催一下|希望")
PROBLEM = re.compile(
    r"还没|还不|还是没|一直|始终|到现在|至今|怎么还|为什么还|咋还|说好|明明|却|竟然|居然|根本|都没|"
    r"没收到|没有收到|没到|不给|不让|拒绝|不处理|不解决|不回|不理|没人|太差|很差|差劲|垃圾|坑|上当|"
    r"投诉|失望|生气|气死|无语|坏了|坏的|破了|烂了|碎了|漏了|假的|不是正品|少了|错了|不对|不能用|不行|"
    r"退不了|不退|不换|不发|没发|不一样|不符|问题|毛病|故障|[了过]\d*[天周]|好几天|几天了|多少天"
)

# In character n-grams a placeholder (URL, PHONE, ORDER, MONEY) is one symbol, not its letters.
_SYMBOLS = {name: chr(0xE000 + i) for i, name in enumerate(PLACEHOLDERS)}
_PLACEHOLDER = re.compile("|".join(PLACEHOLDERS))
_CJK = re.compile(r"[\u4e00-\u9fff]")

# Why a message's label should be checked by a person, besides a low probability.
LITTLE_CHINESE, REPETITIVE, NO_KNOWN_TERM = 1, 2, 4


class Terms(NamedTuple):
    """The terms of one message by kind, unprefixed: word grams (with repeats), its characters
    (the character n-grams are taken from them where needed), form terms and crossed terms."""

    words: list[str]
    chars: str
    form: list[str]
    crossed: list[str]


def form_of(chars: str) -> str:
    """The message's form: ``p`` a problem is stated, else ``q`` a question, ``r`` a request, ``s`` other."""
    if PROBLEM.search(chars):
        return "p"
    if QUESTION.search(chars):
        return "q"
    return "r" if REQUEST.search(chars) else "s"


def symbols(clean: str) -> str:
    """The characters the n-grams are made of: placeholders as one symbol each, spaces dropped."""
    return (_PLACEHOLDER.sub(lambda m: _SYMBOLS[m.group()], clean) if "URL" in clean or "PHONE" in clean or
            "ORDER" in clean or "MONEY" in clean else clean).replace(" ", "")


def message_terms(clean: str, words: list[str], crossed: bool = True) -> Terms:
    """The ``Terms`` of one normalised message and its words."""
    word_grams = words + [a + " " + b for a, b in zip(words, words[1:])]
    chars = symbols(clean)
    length = next((b for b in LENGTH_BUCKETS if len(chars) <= b), "more")
    form = form_of(clean)
    cross = [form + "|" + w for w in set(words) if not w[0].isdigit()] if crossed else []
    return Terms(word_grams, chars, ["len" + str(length), form], cross)


def char_grams(chars: str, char_ngrams: tuple[int, int]) -> list[str]:
    """The character n-grams of ``chars``, shortest first, with repeats."""
    low, high = char_ngrams
    return [chars[i : i + n] for n in range(low, high + 1) for i in range(len(chars) - n + 1)]


def text_flags(clean: str) -> int:
    """``LITTLE_CHINESE`` / ``REPETITIVE`` bits for text the model cannot read well."""
    chars = clean.replace(" ", "")
    flags = 0
    if chars and _CJK.subn("", chars)[1] < max(2, 0.3 * len(chars)):
        flags |= LITTLE_CHINESE
    if len(chars) > 20 and len({chars[i : i + 2] for i in range(len(chars) - 1)}) < 0.35 * (len(chars) - 1):
        flags |= REPETITIVE
    return flags


def prefixed(terms: Terms, char_ngrams: tuple[int, int] = (1, 2)) -> list[str]:
    """All terms of a message with their kind's prefix (as stored in a model's vocabulary)."""
    kinds = (terms.words, char_grams(terms.chars, char_ngrams), terms.form, terms.crossed)
    return [prefix + g for prefix, grams in zip(KINDS, kinds) for g in grams]


def display(term: str) -> str:
    """A term as a person reads it: the prefix and form dropped, word bigrams joined, placeholders named."""
    shown = term[2:].split("|", 1)[-1] if term.startswith(CROSS) else term[2:]
    shown = shown.replace(" ", "")
    for name, symbol in _SYMBOLS.items():
        shown = shown.replace(symbol, name)
    return shown


class Analyzer:
    """Raw messages to ``Terms``: truncate, normalise (a chunk at once), segment, words, characters and form."""

    def __init__(self, crossed: bool = True, max_chars: int = 2000, engine: str | None = None) -> None:
        self.crossed = crossed
        self.max_chars = max_chars
        self.segmenter = Segmenter(engine)

    def clean(self, texts: list[str]) -> list[str]:
        """The normalised text of each message (its first ``max_chars`` characters)."""
        return normalize_many([t[: self.max_chars] for t in texts])

    def analyze(self, texts: list[str]) -> tuple[list[Terms], list[str]]:
        """The ``Terms`` and the normalised text of each message."""
        cleaned = self.clean(texts)
        cut = self.segmenter.cut
        return [message_terms(c, cut(c), self.crossed) for c in cleaned], cleaned


@dataclass
class SparseRows:
    """A CSR matrix as NumPy arrays: row ``i`` holds ``data[indptr[i]:indptr[i+1]]`` at ``indices``."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    n_columns: int

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def dot(self, weights: np.ndarray, block: int = 128) -> np.ndarray:
        """``self @ weights`` for a dense (n_columns, k) array, ``block`` rows at a time (the
        products of a block stay in the CPU cache: 8× faster than one pass over a chunk)."""
        out = np.zeros((len(self), weights.shape[1]), dtype=weights.dtype)
        for start in range(0, len(self), block):
            bounds = self.indptr[start : start + block + 1]
            first, last = bounds[0], bounds[-1]
            filled = np.flatnonzero(np.diff(bounds))
            if len(filled):
                products = weights[self.indices[first:last]] * self.data[first:last, None]
                out[start + filled] = np.add.reduceat(products, bounds[filled] - first, axis=0)
        return out

    def to_scipy(self):
        """The same matrix as ``scipy.sparse.csr_matrix`` (for training with scikit-learn)."""
        from scipy.sparse import csr_matrix

        return csr_matrix((self.data, self.indices, self.indptr), shape=(len(self), self.n_columns))


class Vectorizer:
    """Terms to L2-normalised TF-IDF rows (scikit-learn's ``TfidfVectorizer`` weighting).

    Parameters
    ----------
    char_ngrams : (min, max) length of the character n-grams (at most 3).
    min_df : terms in fewer training messages are dropped.
    max_df : terms in a larger share of training messages are dropped (function words such as
        很, 了, 好: they carried the writing style of our corpus, not the dispute).
    max_count : a term's count is capped at this before tf = 1 + ln(count): repetition ("真的很生气"
        × 20) must not drown the complaint next to it; 1 counts every term once (binary).

    Character n-grams are matched as integer keys over a whole chunk at once (code points packed
    into an int64, looked up with a binary search), words through dictionaries: no n-gram
    string is built at prediction time.
    """

    def __init__(self, char_ngrams: tuple[int, int] = (1, 2), min_df: int = 2, max_df: float = 0.1,
                 max_count: int = 3) -> None:
        self.char_ngrams = tuple(char_ngrams)
        self.min_df = min_df
        self.max_df = max_df
        self.max_count = max_count

    def fit(self, docs: list[Terms]) -> "Vectorizer":
        """Learn the vocabulary (sorted, so the same data give the same columns) and the idf."""
        low, high = self.char_ngrams
        if not 1 <= low <= high <= 3:
            raise ValueError(f"char_ngrams must be (min, max) with 1 <= min <= max <= 3, got {self.char_ngrams}")
        df: Counter = Counter()
        for doc in docs:
            df.update({WORD + g for g in doc.words} | {CHAR + g for g in char_grams(doc.chars, self.char_ngrams)}
                      | {FORM + g for g in doc.form} | {CROSS + g for g in doc.crossed})
        most = max(int(self.max_df * len(docs)), self.min_df)
        self.terms_ = sorted(t for t, n in df.items() if self.min_df <= n <= most)
        counts = np.array([df[t] for t in self.terms_], dtype=np.float64)
        self.idf_ = (np.log((1 + len(docs)) / (1 + counts)) + 1).astype(np.float32)
        for derived in ("_index", "_char_keys"):
            self.__dict__.pop(derived, None)
        return self

    @property
    def index_(self) -> list[dict[str, int]]:
        """Per kind, unprefixed term to column; derived from ``terms_`` on first use."""
        if "_index" not in self.__dict__:
            terms = self.terms_  # sorted, so the terms of a kind are one run
            starts = [bisect.bisect_left(terms, prefix) for prefix in KINDS]
            ends = [bisect.bisect_left(terms, prefix[0] + chr(ord(prefix[1]) + 1)) for prefix in KINDS]
            self._index = [dict(zip([t[2:] for t in terms[a:b]], range(a, b))) for a, b in zip(starts, ends)]
        return self._index

    @property
    def char_keys_(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted integer keys of the vocabulary's character n-grams and their columns."""
        if "_char_keys" not in self.__dict__:
            grams = self.index_[1]
            lengths = np.fromiter(map(len, grams), dtype=np.int64, count=len(grams))
            points = np.frombuffer("".join(grams).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
            ends = np.cumsum(lengths)
            keys = np.zeros(len(grams), dtype=np.int64)
            for k in range(int(lengths.max(initial=0))):  # code points, 21 bits each, first one highest
                has = lengths > k
                keys[has] = (keys[has] << 21) | points[ends[has] - lengths[has] + k]
            columns = np.fromiter(grams.values(), dtype=np.int64, count=len(grams))
            order = np.argsort(keys)
            self._char_keys = keys[order], columns[order]
        return self._char_keys

    def transform(self, docs: list[Terms]) -> SparseRows:
        """One weighted row per message. The form of a message is no signal on its own: a message
        with no known word or character (only form and crossed terms) gets an empty row."""
        words, _, form, crossed = self.index_
        word_rows, word_cols, other_rows, other_cols = [], [], [], []
        for i, doc in enumerate(docs):
            found = [c for c in map(words.get, doc.words) if c is not None]
            word_cols += found
            word_rows += [i] * len(found)
            found = [c for c in map(form.get, doc.form) if c is not None]
            found += [c for c in map(crossed.get, doc.crossed) if c is not None]
            other_cols += found
            other_rows += [i] * len(found)
        char_rows, char_cols = self._char_columns(docs)
        content_rows = np.concatenate([np.asarray(word_rows, dtype=np.int64), char_rows])
        has_content = np.bincount(content_rows, minlength=len(docs)) > 0
        rows = np.concatenate([content_rows, np.asarray(other_rows, dtype=np.int64)])
        cols = np.concatenate([np.asarray(word_cols, dtype=np.int64), char_cols, np.asarray(other_cols, dtype=np.int64)])
        keep = has_content[rows]
        keys, counts = np.unique(rows[keep] * len(self.terms_) + cols[keep], return_counts=True)
        rows, indices = np.divmod(keys, len(self.terms_))
        tf = 1 + np.log(np.minimum(counts, self.max_count).astype(np.float32))
        data = tf * self.idf_[indices]
        norms = np.sqrt(np.bincount(rows, weights=data.astype(np.float64) ** 2, minlength=len(docs)))
        data /= norms[rows].astype(np.float32)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(docs)))])
        return SparseRows(indptr, indices.astype(np.int32), data, len(self.terms_))

    def _char_columns(self, docs: list[Terms]) -> tuple[np.ndarray, np.ndarray]:
        """(row, column) of every known character n-gram of ``docs``, found for the whole chunk at once."""
        keys, columns = self.char_keys_
        points = np.frombuffer("".join(d.chars for d in docs).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        lengths = np.fromiter((len(d.chars) for d in docs), dtype=np.int64, count=len(docs))
        row_of = np.repeat(np.arange(len(docs), dtype=np.int64), lengths)
        end_of = np.repeat(np.cumsum(lengths), lengths)  # where each character's message ends
        rows, cols = [], []
        low, high = self.char_ngrams
        for n in range(low, high + 1):
            starts = np.flatnonzero(np.arange(len(points)) + n <= end_of)
            gram = points[starts]
            for k in range(1, n):
                gram = (gram << 21) | points[starts + k]
            at = np.minimum(np.searchsorted(keys, gram), max(len(keys) - 1, 0))
            hit = keys[at] == gram if len(keys) else np.zeros(len(gram), bool)
            rows.append(row_of[starts[hit]])
            cols.append(columns[at[hit]])
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(rows), np.concatenate(cols)
