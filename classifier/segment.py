"""Word segmentation: jieba's cuts, with our e-commerce dictionary, from a fast or a reference engine.

Two engines give the same cuts (HMM off), apart from ties between equally probable cuts
(嘀 嘀嘀 / 嘀嘀 嘀), which ``tests/test_segment.py`` checks over the corpus and the dev set:

* ``rjieba``: a binding of jieba-rs, the Rust port of jieba, about 7× faster and quicker to start;
* ``jieba``: the Python reference, used where no rjieba wheel installs.

Each ``Segmenter`` owns its dictionary, loaded with ``resources/userdict.txt`` (dispute and
shop terms such as 七天无理由, 运费险, 仅退款, 价保, 揽收); the global tokenizers are never touched.
"""
from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import logging
from functools import lru_cache
from importlib import resources
from pathlib import Path

USERDICT = "userdict.txt"
ENGINES = ("rjieba", "jieba")


@lru_cache(maxsize=1)
def userdict() -> tuple[tuple[str, int | None, str | None], ...]:
    """The user dictionary's entries: (word, frequency or None, part-of-speech tag or None)."""
    entries = []
    for line in resources.files("classifier.resources").joinpath(USERDICT).read_text("utf-8").splitlines():
        parts = line.split()
        if parts:
            freq = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
            entries.append((parts[0], freq, parts[2] if len(parts) > 2 else None))
    return tuple(entries)


def userdict_sha256() -> str:
    """SHA-256 of the user dictionary file (recorded in a model's metadata)."""
    return hashlib.sha256(resources.files("classifier.resources").joinpath(USERDICT).read_bytes()).hexdigest()


def default_engine() -> str:
    """``rjieba`` when it is installed, else ``jieba``."""
    return "rjieba" if importlib.util.find_spec("rjieba") else "jieba"


@lru_cache(maxsize=1)
def _rjieba_class():
    """rjieba's ``Jieba`` class. Its compiled module is loaded on its own: the package's ``__init__``
    builds a default tokenizer this project never uses (0.1 s of every cold start)."""
    folders = importlib.util.find_spec("rjieba").submodule_search_locations or []
    for path in (p for folder in folders for p in sorted(Path(folder).glob("rjieba*")) if p.suffix in (".so", ".pyd")):
        try:
            loader = importlib.machinery.ExtensionFileLoader("rjieba.rjieba", str(path))
            module = importlib.util.module_from_spec(importlib.util.spec_from_loader("rjieba.rjieba", loader))
            loader.exec_module(module)
            return module.Jieba
        except (ImportError, AttributeError):
            break
    import rjieba

    return rjieba.Jieba


class Segmenter:
    """Cut normalised text into words with ``engine`` (default: ``default_engine()``).

    >>> Segmenter().cut("支持七天无理由吗")
    ['支持', '七天无理由', '吗']
    """

    def __init__(self, engine: str | None = None) -> None:
        self.engine = engine or default_engine()
        if self.engine == "rjieba":
            self._tokenizer = _rjieba_class()()
            for word, freq, tag in userdict():
                self._tokenizer.add_word(word, freq, tag)
            self._cut = lambda text: self._tokenizer.cut(text, hmm=False)
        elif self.engine == "jieba":
            import jieba

            logging.getLogger("jieba").setLevel(logging.WARNING)
            self._tokenizer = jieba.Tokenizer()
            with resources.files("classifier.resources").joinpath(USERDICT).open("rb") as fh:
                self._tokenizer.load_userdict(fh)
            self._cut = lambda text: self._tokenizer.cut(text, HMM=False)
        else:
            raise ValueError(f"unknown segmentation engine {engine!r}; expected one of: {', '.join(ENGINES)}")

    def cut(self, text: str) -> list[str]:
        """The words of ``text``, without whitespace tokens.

        jieba's HMM guess at unseen words is off: it halves the speed and, with character
        n-grams beside the words, does not help accuracy (see benchmarks/README.md).
        """
        return [word for word in self._cut(text) if not word.isspace()]

    def __getstate__(self) -> dict:
        return {"engine": self.engine}  # the tokenizer is rebuilt, not pickled, in another process

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["engine"])
