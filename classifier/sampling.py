"""Choose the messages worth labelling: the ones whose labels would teach the model most.

Three strategies, each returning row positions in the order they were chosen:

* ``uncertain``: smallest margin between the model's two most probable labels first;
* ``diverse``: the same number of messages for every label the model predicts (rare
  predicted labels are not crowded out by ``other``), least confident first within a label;
* ``random``: a uniform, seeded sample (the baseline to compare the others with).

All three skip a message that is a near-copy (character 4-gram Jaccard above
``max_similarity``) of one already chosen, so a sheet never holds 50 versions of 好评.
"""
from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from . import knowledge
from .datacheck import grams

STRATEGIES = ("uncertain", "diverse", "random")


class _NearCopyFilter:
    """Accepts a text unless it is a near-copy of one accepted before."""

    def __init__(self, max_similarity: float) -> None:
        self.max_similarity = max_similarity
        self._index: dict[str, list[int]] = defaultdict(list)
        self._sizes: list[int] = []

    def accept(self, text: str) -> bool:
        mine = grams(text)
        shared = Counter(j for gram in mine for j in self._index.get(gram, ()))
        if any(n / (len(mine) + self._sizes[j] - n) > self.max_similarity for j, n in shared.items()):
            return False
        for gram in mine:
            self._index[gram].append(len(self._sizes))
        self._sizes.append(len(mine))
        return True


def margins(probabilities: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability of each row (small: the model hesitates between two labels)."""
    top2 = np.sort(probabilities, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def select(texts, probabilities: np.ndarray | None, n: int, strategy: str = "uncertain", seed: int = 0,
           max_similarity: float = 0.5) -> list[int]:
    """Positions of up to ``n`` messages of ``texts`` to label, in the order chosen.

    ``probabilities`` (one row per text, as ``predict_proba`` gives) is needed by ``uncertain``
    and ``diverse``; ``random`` ignores it. Blank texts are never chosen.
    """
    texts = list(texts)
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of: {', '.join(STRATEGIES)}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if strategy != "random":
        if probabilities is None or len(probabilities) != len(texts):
            raise ValueError(f"strategy {strategy!r} needs one row of probabilities per text")
    rng = np.random.default_rng(seed)
    tiebreak = rng.random(len(texts))  # seeded, so equal margins are ordered the same way every run
    if strategy == "random":
        order = rng.permutation(len(texts))
    elif strategy == "uncertain":
        order = np.lexsort((tiebreak, margins(probabilities)))
    else:
        order = _round_robin(probabilities, tiebreak)
    chosen: list[int] = []
    seen = _NearCopyFilter(max_similarity)
    for i in order:
        if len(chosen) == n:
            break
        if texts[i].strip() and seen.accept(texts[i]):
            chosen.append(int(i))
    return chosen


def _round_robin(probabilities: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Positions taken in turn from each predicted label, least confident first within a label."""
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    queues = [np.flatnonzero(predicted == j) for j in range(probabilities.shape[1])]
    queues = [q[np.lexsort((tiebreak[q], confidence[q]))] for q in queues if len(q)]
    longest = max((len(q) for q in queues), default=0)
    return np.asarray([q[k] for k in range(longest) for q in queues if k < len(q)], dtype=np.int64)


SHEET_COLUMNS = ["model_label", "model_label_name", "model_confidence", "correct_label"]


def sample_table(input_path, output_path, model, n: int, *, strategy: str = "uncertain", seed: int = 0,
                 text_column=None, role_column=None, buyer_values=None, seller_values=None, input_format=None,
                 encoding=None, sheet=None, header_row=None, chunk_size: int = 4000) -> dict:
    """Write a review sheet of ``n`` buyer messages of ``input_path`` chosen by ``strategy``.

    The sheet holds every input column, the model's label and confidence and an empty
    ``correct_label`` column; ``train --extra`` takes it back once a person filled that column.
    Column detection and buyer filtering are those of ``label``. Returns counts.
    """
    import pandas as pd

    from .batch import LABELLED, Options, prepare, resolve_columns, settle_roles
    from .tabular import TableWriter, open_table

    reader = open_table(input_path, fmt=input_format, encoding=encoding, sheet=sheet, header_row=header_row)
    columns = resolve_columns(reader.columns, text_column, role_column, None, buyer_values, seller_values)
    options = Options(model.max_chars)
    frames, texts, probabilities = [], [], []
    for k, chunk in enumerate(reader.chunks(chunk_size)):
        if k == 0:
            columns = settle_roles(columns, chunk.frame)
        chunk_texts, statuses = prepare(chunk.frame, columns, options, chunk.errors, chunk.damaged)
        keep = [s in LABELLED for s in statuses]
        frames.append(chunk.frame[keep])
        texts += chunk_texts
        probabilities.append(model.predict_proba(chunk_texts))
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=reader.columns)
    proba = np.vstack(probabilities) if probabilities else np.zeros((0, len(model.classes_)))
    chosen = select(texts, proba, n, strategy, seed=seed)
    decisions = model.decide([texts[i] for i in chosen]) if chosen else None
    with TableWriter(output_path, [c for c in reader.columns if c not in SHEET_COLUMNS] + SHEET_COLUMNS) as writer:
        for position, i in enumerate(chosen):
            label = str(model.classes_[decisions.label[position]])
            writer.write([rows.iloc[i][c] for c in reader.columns if c not in SHEET_COLUMNS]
                         + [label, knowledge.info(label).name, round(float(decisions.probability[position]), 4), ""])
    return {"candidates": len(texts), "chosen": len(chosen), "strategy": strategy}
