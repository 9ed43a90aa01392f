"""The complaint classifier: terms → sparse TF-IDF rows → a linear model → calibrated decisions.

``ComplaintClassifier`` follows scikit-learn's conventions: parameters are set in ``__init__``,
``fit`` learns state whose names end in ``_``, and ``predict`` / ``predict_proba`` work on lists
of raw messages. Each step is its own piece: ``features.Analyzer`` (text → terms),
``features.Vectorizer`` (terms → ``SparseRows``), the linear scores here, and
``decision.decide`` (probabilities → labels and flags). Training uses scikit-learn; prediction
needs only NumPy, so a cold ``predict`` from the command line stays fast.
"""
from __future__ import annotations

import inspect
from functools import lru_cache

import numpy as np

from . import knowledge
from .decision import Decisions, Prediction, decide, labelled_status
from .features import FORM, NO_KNOWN_TERM, Analyzer, SparseRows, Terms, Vectorizer, display, prefixed, text_flags
from .text import SURROGATES


class ComplaintClassifier:
    """Label Chinese buyer messages with one of the taxonomy's 17 dispute labels.

    Parameters
    ----------
    C : inverse regularisation strength of the logistic regression.
    char_ngrams : (min, max) length of the character n-grams.
    crossed_terms : add each word crossed with the message's form (question / request / problem).
    min_df, max_df, max_count : see ``features.Vectorizer``.
    class_weight : passed to ``LogisticRegression`` (``None`` or ``"balanced"``).
    review_threshold : a prediction whose (calibrated) probability is below this needs review.
    dispute_threshold : a message is a dispute when ``1 − P(other)`` reaches this.
    max_chars : only the first ``max_chars`` characters of a message are used.
    engine : segmentation engine (``rjieba`` or ``jieba``; ``None``: the fastest installed).
    """

    def __init__(
        self,
        C: float = 40.0,
        char_ngrams: tuple[int, int] = (1, 2),
        crossed_terms: bool = True,
        min_df: int = 2,
        max_df: float = 0.1,
        max_count: int = 3,
        class_weight: str | None = None,
        review_threshold: float = 0.8,
        dispute_threshold: float = 0.5,
        max_chars: int = 2000,
        engine: str | None = None,
    ) -> None:
        self.C = C
        self.char_ngrams = char_ngrams
        self.crossed_terms = crossed_terms
        self.min_df = min_df
        self.max_df = max_df
        self.max_count = max_count
        self.class_weight = class_weight
        self.review_threshold = review_threshold
        self.dispute_threshold = dispute_threshold
        self.max_chars = max_chars
        self.engine = engine

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
            if name in ("review_threshold", "dispute_threshold") and not 0 <= value <= 1:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
            setattr(self, name, value)
        self.__dict__.pop("_analyzer", None)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"ComplaintClassifier({args})"

    # -- text to terms --------------------------------------------------------------------
    @property
    def analyzer(self) -> Analyzer:
        """The text-to-terms step, built from the parameters on first use."""
        if "_analyzer" not in self.__dict__:
            self._analyzer = Analyzer(self.crossed_terms, self.max_chars, self.engine)
        return self._analyzer

    def analyze(self, texts) -> list[Terms]:
        """The ``Terms`` of each raw message (reuse them with ``fit_terms`` / ``predict_proba_terms``)."""
        return self.analyzer.analyze(_check_texts(texts))[0]

    def terms(self, text: str) -> list[str]:
        """All terms of one raw message, prefixed by kind, as a person would inspect them."""
        return prefixed(self.analyze([text])[0], tuple(self.char_ngrams))

    # -- training -------------------------------------------------------------------------
    def fit(self, texts, y, sample_weight=None) -> "ComplaintClassifier":
        """Learn from raw messages ``texts`` and their label ids ``y`` (optionally weighted)."""
        return self.fit_terms(self.analyze(texts), y, sample_weight)

    def fit_terms(self, docs: list[Terms], y, sample_weight=None) -> "ComplaintClassifier":
        """``fit`` on messages already turned into terms by ``analyze`` (saves work in cross-validation)."""
        y = [str(label) for label in y]
        if len(docs) != len(y):
            raise ValueError(f"messages and labels differ in length: {len(docs)} != {len(y)}")
        unknown = sorted(set(y) - set(knowledge.labels()))
        if unknown:
            raise ValueError(f"unknown label ids {unknown}; expected ids from the taxonomy: {knowledge.labels()}")
        if len(set(y)) < 2:
            raise ValueError("need messages of at least two labels to train")
        self.vectorizer_ = Vectorizer(self.char_ngrams, self.min_df, self.max_df, self.max_count).fit(docs)
        rows = self.vectorizer_.transform(docs)
        self.classes_, self.coef_, self.intercept_ = fit_linear(rows, y, sample_weight, self.C, self.class_weight)
        self.temperature_ = 1.0
        self.__dict__.pop("_centered", None)  # the explanation cache belongs to the previous coefficients
        return self

    # -- scores and probabilities ---------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise RuntimeError("this ComplaintClassifier is not fitted yet: call fit() or load a model")

    def decision_function_terms(self, docs: list[Terms]) -> np.ndarray:
        """Uncalibrated linear scores (one row per message, columns in the order of ``classes_``)."""
        self._check_fitted()
        return self.vectorizer_.transform(docs).dot(self.coef_) + self.intercept_

    def predict_proba_terms(self, docs: list[Terms]) -> np.ndarray:
        """``predict_proba`` on messages already turned into terms by ``analyze``."""
        return softmax(self.decision_function_terms(docs) / self.temperature_)

    def predict_proba(self, texts) -> np.ndarray:
        """Calibrated probabilities, one row per message, columns in the order of ``classes_``."""
        return self.predict_proba_terms(self.analyze(texts))

    def predict(self, texts) -> np.ndarray:
        """The label id of each message (``other`` unless it is a dispute, see ``dispute_threshold``)."""
        decisions = self.decide(texts)
        return self.classes_[decisions.label]

    def decide(self, texts, k: int = 3) -> Decisions:
        """Decisions on a chunk of raw messages as compact arrays (``decision.Decisions``)."""
        decisions, _ = self._decide(_check_texts(texts), k)
        return decisions

    def _decide(self, texts: list[str], k: int):
        self._check_fitted()
        docs, cleaned = self.analyzer.analyze(texts)
        rows = self.vectorizer_.transform(docs)
        probabilities = softmax((rows.dot(self.coef_) + self.intercept_) / self.temperature_)
        flags = np.array([text_flags(c) for c in cleaned], dtype=np.int64)
        flags[np.diff(rows.indptr) == 0] |= NO_KNOWN_TERM
        decisions = decide(probabilities, self.classes_, flags, dispute_threshold=self.dispute_threshold,
                           review_threshold=self.review_threshold, k=k)
        return decisions, rows

    # -- predictions for people ------------------------------------------------------------
    def classify(self, texts, k: int = 3) -> list[Prediction]:
        """Full predictions: label, probabilities, dispute flag, top ``k``, review flag and reasons,
        the terms that drove the label, rule and advice. Blank messages come back ``empty``; a
        message with lone surrogates (undecodable bytes) is labelled with them as U+FFFD and its
        status says so."""
        texts = _check_texts(texts)
        filled = [i for i, t in enumerate(texts) if t.strip()]
        decisions, rows = self._decide([texts[i] for i in filled], k)
        terms = self._explanations(rows, decisions.label, 5)
        classes = [str(c) for c in self.classes_]
        out: list[Prediction] = [_empty_prediction()] * len(texts)
        for position, i in enumerate(filled):
            label = classes[decisions.label[position]]
            rule, advice = _rule_and_advice(label)
            out[i] = Prediction(
                label=label,
                name=knowledge.info(label).name,
                probability=float(decisions.probability[position]),
                dispute_probability=float(decisions.dispute_probability[position]),
                is_dispute=bool(decisions.is_dispute[position]),
                top=[(classes[c], float(p))
                     for c, p in zip(decisions.top_index[position], decisions.top_probability[position])],
                needs_review=bool(decisions.needs_review[position]),
                review_reasons=decisions.reasons(position, self.review_threshold),
                top_terms=[t for t, _ in terms[position]],
                rule=rule,
                advice=advice,
                status=labelled_status(len(texts[i]) > self.max_chars, bool(SURROGATES.search(texts[i]))),
            )
        return out

    def explain(self, text: str, label: str | None = None, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` terms of ``text`` that pushed most toward ``label`` (default: the prediction)."""
        decisions, rows = self._decide(_check_texts([text]), 1)
        j = int(decisions.label[0]) if label is None else self._class_index(label)
        return self._explanations(rows, np.array([j]), k)[0]

    def _class_index(self, label: str) -> int:
        hits = np.flatnonzero(self.classes_ == label)
        if not len(hits):
            raise ValueError(f"label {label!r} is not one of this model's classes: {list(self.classes_)}")
        return int(hits[0])

    def _explanations(self, rows: SparseRows, labels: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """Per row, the ``k`` terms that pushed it most toward its label: weight × (the term's
        coefficient for the label − its mean coefficient), positive pushes only, for a whole chunk."""
        if "_centered" not in self.__dict__:
            self._centered = self.coef_ - self.coef_.mean(axis=1, keepdims=True)
        row_of = np.repeat(np.arange(len(rows)), np.diff(rows.indptr))
        push = rows.data * self._centered[rows.indices, np.asarray(labels)[row_of]]
        positive = np.flatnonzero(push > 0)
        # rows in order, the strongest push first within a row (|push| < 1e3: weights <= 1, coefficients < 1e3)
        order = positive[np.argsort(row_of[positive] * 1e3 - push[positive], kind="stable")]
        pushes, columns = push[order].tolist(), rows.indices[order].tolist()  # Python lists: fast to walk
        ends = np.searchsorted(row_of[order], np.arange(len(rows)), side="right").tolist()
        terms = self.vectorizer_.terms_
        out: list[list[tuple[str, float]]] = []
        start = 0
        for end in ends:
            best: dict[str, float] = {}
            for at in range(start, end):
                if len(best) == k:
                    break
                term = terms[columns[at]]
                if not term.startswith(FORM):  # the form of a message (its length, a question mark) explains nothing
                    best.setdefault(display(term), round(pushes[at], 4))
            out.append(list(best.items()))
            start = end
        return out


def fit_linear(rows: SparseRows, y, sample_weight=None, C: float = 40.0, class_weight=None):
    """A multinomial logistic regression on ``rows``: (classes, coef as (n_columns, k) float32, intercept)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, max_iter=3000, class_weight=class_weight)
    model.fit(rows.to_scipy(), list(y), sample_weight=sample_weight)
    coef, intercept = model.coef_, model.intercept_
    if len(model.classes_) == 2:  # one logit for the second class: as two, softmax([-z/2, z/2]) = sigmoid(z)
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
    return (np.asarray(model.classes_, dtype=str), np.ascontiguousarray(coef.T, dtype=np.float32),
            intercept.astype(np.float32))


@lru_cache(maxsize=None)
def _rule_and_advice(label: str) -> tuple[str, str]:
    entry = knowledge.info(label)
    return entry.rule, entry.advice_text()


def _empty_prediction() -> Prediction:
    return Prediction(label="", name="", probability=0.0, dispute_probability=0.0, is_dispute=False, top=[],
                      needs_review=False, review_reasons=[], top_terms=[], rule="", advice="", status="empty")


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
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
