"""The complaint classifier: TF-IDF over word and character n-grams, then a linear model.

``ComplaintClassifier`` follows scikit-learn's conventions: parameters are set in
``__init__``, ``fit`` learns state whose names end in ``_``, and ``predict`` /
``predict_proba`` work on lists of raw messages. Training uses scikit-learn; prediction
needs only NumPy, so a cold ``predict`` from the command line stays fast.
"""
from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from . import knowledge
from .features import PREFIXES, display, ngrams, terms
from .segment import Segmenter
from .text import normalize


@dataclass
class Prediction:
    """What the classifier says about one message."""

    label: str
    name: str
    probability: float
    top: list[tuple[str, float]]
    needs_review: bool
    top_terms: list[str]
    truncated: bool = False
    rule: str = field(init=False)
    advice: str = field(init=False)

    def __post_init__(self) -> None:
        entry = knowledge.info(self.label)
        self.rule = entry.rule
        self.advice = entry.advice_text()

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        out = asdict(self)
        out["top"] = [{"label": lab, "probability": round(p, 4)} for lab, p in self.top]
        out["probability"] = round(self.probability, 4)
        return out


class ComplaintClassifier:
    """Label Chinese buyer messages with one of the taxonomy's 17 dispute labels.

    Parameters
    ----------
    C : inverse regularisation strength of the logistic regression.
    char_ngrams : (min, max) length of the character n-grams.
    min_df : terms seen in fewer training messages are dropped.
    max_df : terms seen in a larger share of training messages are dropped (function words
        such as 很, 了, 好: they carried the writing style of our corpus, not the dispute).
    class_weight : passed to ``LogisticRegression`` (``None`` or ``"balanced"``).
    review_threshold : a prediction whose probability is below this needs review.
    max_chars : only the first ``max_chars`` characters of a message are used.
    other_prior : the share of ``other`` messages expected in use (real chat exports are
        mostly not disputes); the model's prior is shifted from the training share to it.
        ``None`` (the default) keeps the training share: shifting to 0.5 cut false alarms on
        real chats from 12% to 6% but lowered macro-F1 from 0.51 to 0.44 (data/README.md).
    """

    def __init__(
        self,
        C: float = 20.0,
        char_ngrams: tuple[int, int] = (1, 2),
        min_df: int = 2,
        max_df: float = 0.1,
        class_weight: str | None = None,
        review_threshold: float = 0.5,
        max_chars: int = 2000,
        other_prior: float | None = None,
    ) -> None:
        self.C = C
        self.char_ngrams = char_ngrams
        self.min_df = min_df
        self.max_df = max_df
        self.class_weight = class_weight
        self.review_threshold = review_threshold
        self.max_chars = max_chars
        self.other_prior = other_prior

    # -- scikit-learn estimator protocol -------------------------------------------------
    def get_params(self, deep: bool = True) -> dict:
        """The constructor parameters (as scikit-learn's ``clone`` expects)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params) -> "ComplaintClassifier":
        """Set constructor parameters; unknown names raise ``ValueError``."""
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r}; valid: {', '.join(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"ComplaintClassifier({args})"

    # -- text to terms --------------------------------------------------------------------
    @property
    def _segmenter(self) -> Segmenter:
        if "_segmenter_instance" not in self.__dict__:
            self._segmenter_instance = Segmenter()
        return self._segmenter_instance

    def analyze(self, text: str) -> list[str]:
        """The terms of one raw message: truncate, normalise, segment, n-grams."""
        return terms(*self._normalized_words(text), tuple(self.char_ngrams))

    def _normalized_words(self, text: str) -> tuple[str, list[str]]:
        clean = normalize(text[: self.max_chars])
        return clean, self._segmenter.cut(clean)

    @property
    def vocabulary_(self) -> dict[str, int]:
        """Term to column, derived from ``terms_`` on first use."""
        if "_vocabulary" not in self.__dict__:
            self._vocabulary = {term: i for i, term in enumerate(self.terms_)}
        return self._vocabulary

    def _columns(self, text: str) -> list[int]:
        """Vocabulary columns of the terms of ``text`` (with repeats), like ``analyze`` but without
        building prefixed strings: the fast path of prediction."""
        if "_indexes" not in self.__dict__:
            indexes = {prefix: {} for prefix in PREFIXES}
            for i, term in enumerate(self.terms_):
                indexes[term[:2]][term[2:]] = i
            self._indexes = [indexes[prefix] for prefix in PREFIXES]
        words, chars, form = ngrams(*self._normalized_words(text), tuple(self.char_ngrams))
        word_index, char_index, form_index = self._indexes
        columns = [word_index[g] for g in words if g in word_index] + [char_index[g] for g in chars if g in char_index]
        # The form of a message is no signal on its own: without a known word it stays unscored.
        return columns + [form_index[g] for g in form if g in form_index] if columns else columns

    # -- training -------------------------------------------------------------------------
    def fit(self, texts, y) -> "ComplaintClassifier":
        """Learn from raw messages ``texts`` and their label ids ``y``."""
        return self.fit_terms([self.analyze(t) for t in _check_texts(texts)], y)

    def fit_terms(self, docs: list[list[str]], y) -> "ComplaintClassifier":
        """``fit`` on messages already turned into terms by ``analyze`` (saves work in cross-validation)."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        y = [str(label) for label in y]
        if len(docs) != len(y):
            raise ValueError(f"messages and labels differ in length: {len(docs)} != {len(y)}")
        unknown = sorted(set(y) - set(knowledge.labels()))
        if unknown:
            raise ValueError(f"unknown label ids {unknown}; expected ids from the taxonomy: {knowledge.labels()}")
        if len(set(y)) < 2:
            raise ValueError("need messages of at least two labels to train")
        vectorizer = TfidfVectorizer(
            analyzer=_identity, min_df=self.min_df, max_df=max(int(self.max_df * len(docs)), self.min_df), sublinear_tf=True, dtype=np.float64
        )
        X = vectorizer.fit_transform(docs)
        model = LogisticRegression(C=self.C, max_iter=3000, class_weight=self.class_weight)
        model.fit(X, y)
        vocabulary = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get)
        self.classes_ = np.asarray(model.classes_, dtype=str)
        self.terms_ = vocabulary
        self.idf_ = vectorizer.idf_.astype(np.float32)
        self.coef_ = np.ascontiguousarray(model.coef_.T, dtype=np.float32)
        self.intercept_ = (model.intercept_ + self._prior_shift(y)).astype(np.float32)
        for cached in ("_indexes", "_vocabulary"):  # derived from terms_ on first use
            self.__dict__.pop(cached, None)
        return self

    def _prior_shift(self, y: list[str]) -> np.ndarray:
        """Log-ratio that moves the share of ``other`` from its training share to ``other_prior``."""
        shift = np.zeros(len(self.classes_))
        trained = y.count("other") / len(y)
        if self.other_prior is not None and 0 < trained < 1:
            if not 0 < self.other_prior < 1:
                raise ValueError(f"other_prior must be between 0 and 1, got {self.other_prior}")
            odds = self.other_prior / (1 - self.other_prior)
            shift[self.classes_ == "other"] = np.log(odds * (1 - trained) / trained)
        return shift

    # -- prediction -----------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise RuntimeError("this ComplaintClassifier is not fitted yet: call fit() or load a model")

    def _vectorize(self, column_lists: list[list[int]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per message: the distinct columns present and their L2-normalised TF-IDF weights."""
        idf = self.idf_
        columns, weights = [], []
        for ids in column_lists:
            counts = Counter(ids)
            cols = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))
            w = tf * idf[cols]
            norm = float(np.sqrt(w @ w)) if len(w) else 1.0
            columns.append(cols)
            weights.append(w / norm)
        return columns, weights

    def _encode(self, texts) -> tuple[list[np.ndarray], list[np.ndarray]]:
        self._check_fitted()
        return self._vectorize([self._columns(t) for t in _check_texts(texts)])

    def _scores(self, columns: list[np.ndarray], weights: list[np.ndarray]) -> np.ndarray:
        scores = np.tile(self.intercept_, (len(columns), 1))
        for i, (cols, w) in enumerate(zip(columns, weights)):
            if len(cols):
                scores[i] += w @ self.coef_[cols]
        return scores

    def predict_proba(self, texts) -> np.ndarray:
        """Probabilities, one row per message, columns in the order of ``classes_``."""
        return _softmax(self._scores(*self._encode(texts)))

    def predict_proba_terms(self, docs: list[list[str]]) -> np.ndarray:
        """``predict_proba`` on messages already turned into terms by ``analyze``."""
        self._check_fitted()
        vocabulary = self.vocabulary_
        columns = [[vocabulary[t] for t in doc if t in vocabulary] for doc in docs]
        return _softmax(self._scores(*self._vectorize(columns)))

    def predict(self, texts) -> np.ndarray:
        """The most probable label id of each message."""
        proba = self.predict_proba(texts)
        return self.classes_[proba.argmax(axis=1)]

    def explain(self, text: str, label: str | None = None, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` terms of ``text`` that pushed most toward ``label`` (default: the prediction)."""
        (cols,), (w,) = self._encode([text])
        if label is None:
            label = self.classes_[_softmax(self._scores([cols], [w]))[0].argmax()]
        return self._top_terms(cols, w, self._class_index(label), k)

    def _class_index(self, label: str) -> int:
        hits = np.flatnonzero(self.classes_ == label)
        if not len(hits):
            raise ValueError(f"label {label!r} is not one of this model's classes: {list(self.classes_)}")
        return int(hits[0])

    def _top_terms(self, cols: np.ndarray, w: np.ndarray, j: int, k: int) -> list[tuple[str, float]]:
        if not len(cols):
            return []
        coef = self.coef_[cols]
        push = w * (coef[:, j] - coef.mean(axis=1))
        best: dict[str, float] = {}
        for i in np.argsort(-push):
            if push[i] <= 0 or len(best) == k:
                break
            shown = display(self.terms_[cols[i]])
            best.setdefault(shown, round(float(push[i]), 4))
        return list(best.items())

    def classify(self, texts, k: int = 3) -> list[Prediction]:
        """Full predictions: label, name, probability, top ``k``, review flag, terms, rule and advice."""
        texts = _check_texts(texts)
        columns, weights = self._encode(texts)
        probabilities = _softmax(self._scores(columns, weights))
        out = []
        for text, cols, w, p in zip(texts, columns, weights, probabilities):
            order = np.argsort(-p)[:k]
            j = int(order[0])
            label = str(self.classes_[j])
            out.append(
                Prediction(
                    label=label,
                    name=knowledge.info(label).name,
                    probability=float(p[j]),
                    top=[(str(self.classes_[i]), float(p[i])) for i in order],
                    needs_review=bool(p[j] < self.review_threshold or not len(cols)),
                    top_terms=[t for t, _ in self._top_terms(cols, w, j, 5)],
                    truncated=len(text) > self.max_chars,
                )
            )
        return out


def _identity(doc):
    return doc


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(scores)
    return e / e.sum(axis=1, keepdims=True)


def _check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("expected a list of messages, got a single str: wrap it in a list")
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"messages must be str; item {bad[0]} is {type(texts[bad[0]]).__name__}")
    return texts
