"""From calibrated probabilities to decisions: label, dispute flag, top k and review flag, as arrays.

``decide`` works on a whole chunk at once and returns compact arrays (what batch workers
send back to the main process); ``Prediction`` is the per-message view that ``classify`` and
``predict --json`` show.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .features import LITTLE_CHINESE, NO_KNOWN_TERM, REPETITIVE

REVIEW_REASONS = {
    "low_confidence": "置信度低于复核阈值",
    "little_chinese": "汉字太少，模型读不准",
    "repetitive": "内容大量重复",
    "no_known_term": "没有模型认识的词",
}
_FLAG_REASONS = ((LITTLE_CHINESE, "little_chinese"), (REPETITIVE, "repetitive"), (NO_KNOWN_TERM, "no_known_term"))


@dataclass
class Decisions:
    """Decisions on a chunk of messages, one entry per message."""

    label: np.ndarray                # int: column of the chosen label in ``classes``
    probability: np.ndarray          # float32: probability of the chosen label
    top_index: np.ndarray            # int (n, k): the k most probable labels, most probable first
    top_probability: np.ndarray      # float32 (n, k)
    dispute_probability: np.ndarray  # float32: 1 − P(other)
    is_dispute: np.ndarray           # bool
    needs_review: np.ndarray         # bool
    flags: np.ndarray                # int: LITTLE_CHINESE | REPETITIVE | NO_KNOWN_TERM bits

    def __len__(self) -> int:
        return len(self.label)

    def reasons(self, i: int, review_threshold: float) -> list[str]:
        """Why message ``i`` needs review (keys of ``REVIEW_REASONS``)."""
        out = [name for bit, name in _FLAG_REASONS if self.flags[i] & bit]
        if self.probability[i] < review_threshold:
            out.insert(0, "low_confidence")
        return out


def decide(probabilities: np.ndarray, classes, flags: np.ndarray, *, dispute_threshold: float,
           review_threshold: float, k: int = 3) -> Decisions:
    """Decisions from probabilities (rows in the order of ``classes``).

    A message is a dispute when ``1 − P(other) >= dispute_threshold``; its label is then the
    most probable dispute label, otherwise ``other``. It needs review when the chosen label's
    probability is under ``review_threshold`` or the text is one the model cannot read well.
    """
    classes = list(classes)
    n = len(probabilities)
    if "other" in classes:
        other = classes.index("other")
        dispute_probability = 1 - probabilities[:, other]
        disputes = probabilities.copy()
        disputes[:, other] = -1
        is_dispute = dispute_probability >= dispute_threshold
        label = np.where(is_dispute, disputes.argmax(axis=1), other)
    else:
        dispute_probability = np.ones(n, np.float32)
        is_dispute = np.ones(n, bool)
        label = probabilities.argmax(axis=1)
    probability = probabilities[np.arange(n), label]
    k = min(k, probabilities.shape[1])
    top_index = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    top_probability = np.take_along_axis(probabilities, top_index, axis=1)
    needs_review = (probability < review_threshold) | (flags != 0)
    return Decisions(label, probability.astype(np.float32), top_index, top_probability.astype(np.float32),
                     dispute_probability.astype(np.float32), is_dispute, needs_review, flags)


def labelled_status(truncated: bool, damaged: bool) -> str:
    """The status of a labelled message: ``ok`` or ``truncated``, with ``_decoding_errors`` when its
    text had characters replaced with U+FFFD."""
    return ("truncated" if truncated else "ok") + ("_decoding_errors" if damaged else "")


@dataclass
class Prediction:
    """What the classifier says about one message.

    ``status`` is ``ok``, ``truncated`` (labelled from the first ``max_chars`` characters),
    ``ok_decoding_errors`` / ``truncated_decoding_errors`` (the same, from text whose undecodable
    characters were replaced with U+FFFD) or ``empty`` (no text: no label, nothing to review).
    """

    label: str
    name: str
    probability: float
    dispute_probability: float
    is_dispute: bool
    top: list[tuple[str, float]]
    needs_review: bool
    review_reasons: list[str]
    top_terms: list[str]
    rule: str
    advice: str
    status: str = "ok"

    @property
    def truncated(self) -> bool:
        return self.status.startswith("truncated")

    @property
    def damaged(self) -> bool:
        return self.status.endswith("_decoding_errors")

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        out = asdict(self)
        out["top"] = [{"label": lab, "probability": round(p, 4)} for lab, p in self.top]
        out["probability"] = round(self.probability, 4)
        out["dispute_probability"] = round(self.dispute_probability, 4)
        return out
