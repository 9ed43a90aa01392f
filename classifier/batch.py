"""Label a whole table of messages, in chunks, on several processes, losing nothing.

Every input row is written out, in input order, with its original columns unchanged
plus the label columns and a ``status``:

* ``ok``          labelled;
* ``empty``       no text to label;
* ``not_buyer``   a seller or system message (only buyer messages are labelled);
* ``truncated``   labelled from the first ``max_chars`` characters;
* ``error:<why>`` the row could not be parsed as it stands (kept as far as it was read).
"""
from __future__ import annotations

import multiprocessing
import os
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from . import knowledge
from .model import ComplaintClassifier, _softmax
from .redact import redact as redact_text
from .tabular import (BUYER_VALUES, CONVERSATION_COLUMNS, ROLE_COLUMNS, TEXT_COLUMNS, TIME_COLUMNS, TableError,
                      TableWriter, check_column, detect_column, open_table)

LABEL_COLUMNS = ["label", "label_name", "confidence", "needs_review", "rule", "advice", "status"]
CONVERSATION_OUTPUT_COLUMNS = ["conversation_id", "label", "label_name", "confidence", "needs_review",
                               "buyer_messages", "driving_line", "driving_message", "top3", "rule", "advice"]


@dataclass
class Columns:
    """The input columns the run uses (``None`` where there is none)."""

    text: str
    role: str | None = None
    conversation: str | None = None
    time: str | None = None
    buyer_values: tuple[str, ...] = tuple(BUYER_VALUES)
    header: tuple[str, ...] = ()


@dataclass
class Summary:
    """What a run did: rows read and how each ended."""

    columns: Columns
    encoding: str | None
    rows_read: int = 0
    statuses: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)
    needs_review: int = 0
    least_confident: list = field(default_factory=list)
    conversations: int = 0

    @property
    def labelled(self) -> int:
        return self.statuses["ok"] + self.statuses["truncated"]

    @property
    def skipped(self) -> dict[str, int]:
        return {k: v for k, v in sorted(self.statuses.items()) if k not in ("ok", "truncated")}

    def check(self) -> None:
        """Raise if the rows written do not add up to the rows read."""
        if sum(self.statuses.values()) != self.rows_read:
            raise AssertionError(f"row count mismatch: read {self.rows_read}, accounted for {sum(self.statuses.values())}")


def resolve_columns(header, text=None, role=None, conversation=None, buyer_values=None, by_conversation=False) -> Columns:
    """Pick the text, sender, conversation and time columns: the flags first, then common names."""
    text = check_column(header, text, "text") if text else detect_column(header, TEXT_COLUMNS, "text")
    role = check_column(header, role, "role") if role else detect_column(header, ROLE_COLUMNS, "role", required=False)
    if conversation:
        conversation = check_column(header, conversation, "conversation")
    else:
        conversation = detect_column(header, CONVERSATION_COLUMNS, "conversation", required=by_conversation)
    time = detect_column(header, TIME_COLUMNS, "time", required=False)
    values = tuple(v.strip().lower() for v in buyer_values) if buyer_values else tuple(BUYER_VALUES)
    return Columns(text, role, conversation, time, values, tuple(header))


def output_columns(header: list[str]) -> list[str]:
    """The input columns, then the label columns; an input column with a label column's name
    keeps its values under ``input_<name>``."""
    taken = set(header) | set(LABEL_COLUMNS)
    renamed = []
    for name in header:
        if name in LABEL_COLUMNS:
            new = f"input_{name}"
            while new in taken:
                new = f"input_{new}"
            taken.add(new)
            name = new
        renamed.append(name)
    return renamed + LABEL_COLUMNS


# -- worker side ------------------------------------------------------------------------------
_WORKER_MODEL: ComplaintClassifier | None = None


def _init_worker(model: ComplaintClassifier) -> None:
    global _WORKER_MODEL  # one model per worker process, set once at start-up
    _WORKER_MODEL = model


def _score_in_worker(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    return score(_WORKER_MODEL, texts)


def score(model: ComplaintClassifier, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (float32, one row per text) and whether each text had any known term."""
    columns, weights = model._encode(texts)
    proba = _softmax(model._scores(columns, weights)).astype(np.float32)
    return proba, np.array([len(c) > 0 for c in columns], dtype=bool)


# -- main side --------------------------------------------------------------------------------
class _Labeller:
    """Turns probabilities into the label columns, caching the per-label text."""

    def __init__(self, model: ComplaintClassifier) -> None:
        self.classes = [str(c) for c in model.classes_]
        entries = [knowledge.info(c) for c in self.classes]
        self.names = [e.name for e in entries]
        self.rules = [e.rule for e in entries]
        self.advice = [e.advice_text() for e in entries]


def label_table(
    input_path,
    output_path,
    model: ComplaintClassifier,
    *,
    text_column: str | None = None,
    role_column: str | None = None,
    buyer_values=None,
    conversation_column: str | None = None,
    by_conversation: bool = False,
    conversation_output=None,
    input_format: str | None = None,
    output_format: str | None = None,
    encoding: str | None = None,
    sheet: str | None = None,
    jobs: int | None = None,
    chunk_size: int = 4000,
    max_chars: int | None = None,
    redact: bool = False,
    progress=None,
    on_columns=None,
) -> Summary:
    """Label every buyer row of ``input_path`` into ``output_path``; return the ``Summary``.

    ``progress`` is called with the number of rows done after each chunk; ``on_columns``
    with the resolved ``Columns`` before any work starts.
    """
    reader = open_table(input_path, fmt=input_format, encoding=encoding, sheet=sheet)
    columns = resolve_columns(reader.columns, text_column, role_column, conversation_column, buyer_values,
                              by_conversation)
    if on_columns:
        on_columns(columns)
    max_chars = max_chars or model.max_chars
    labeller = _Labeller(model)
    summary = Summary(columns, reader.encoding)
    text_at = reader.columns.index(columns.text)
    role_at = reader.columns.index(columns.role) if columns.role else None
    conv_at = reader.columns.index(columns.conversation) if columns.conversation else None
    pools: dict[str, _Pool] = {}
    out_columns = output_columns(reader.columns)
    jobs = max(1, jobs or os.cpu_count() or 1)

    with TableWriter(output_path, out_columns, output_format) as writer, _Scorer(model, jobs) as scorer:
        pending: deque = deque()

        def flush(block):
            rows, texts = block
            proba, signal = scorer.result()
            k = 0
            for row, status in rows:
                extra = [""] * 6
                if status in ("ok", "truncated"):
                    p = proba[k]
                    j = int(p.argmax())
                    review = bool(p[j] < model.review_threshold or not signal[k])
                    extra = [labeller.classes[j], labeller.names[j], f"{p[j]:.4f}", str(review).lower(),
                             labeller.rules[j], labeller.advice[j]]
                    summary.labels[labeller.classes[j]] += 1
                    summary.needs_review += review
                    _keep_least_confident(summary, float(p[j]), row.line, texts[k], labeller.classes[j])
                    if conv_at is not None:
                        key = row.values[conv_at]
                        pools.setdefault(key, _Pool(len(labeller.classes))).add(p, row.line, texts[k])
                    k += 1
                values = list(row.values)
                if redact:
                    values[text_at] = redact_text(values[text_at])
                writer.write(values + extra + [status])
                summary.statuses[status] += 1
            if progress:
                progress(len(rows))

        for block in _blocks(reader.rows, text_at, role_at, columns.buyer_values, max_chars, chunk_size, summary):
            scorer.submit(block[1])
            pending.append(block)
            while len(pending) > 2 * jobs:
                flush(pending.popleft())
        while pending:
            flush(pending.popleft())
    summary.check()
    if by_conversation:
        summary.conversations = _write_conversations(pools, labeller, model, conversation_output, output_format)
    return summary


def _blocks(rows, text_at, role_at, buyer_values, max_chars, chunk_size, summary):
    """Chunks of (rows with their status, texts to score)."""
    block_rows, texts = [], []
    for row in rows:
        summary.rows_read += 1
        text = row.values[text_at] if text_at < len(row.values) else ""
        if row.error:
            status = "error:" + row.error.replace(",", ";")
        elif role_at is not None and row.values[role_at].strip().lower() not in buyer_values:
            status = "not_buyer"
        elif not text.strip():
            status = "empty"
        else:
            status = "truncated" if len(text) > max_chars else "ok"
            texts.append(text[:max_chars])
        block_rows.append((row, status))
        if len(block_rows) >= chunk_size:
            yield block_rows, texts
            block_rows, texts = [], []
    if block_rows:
        yield block_rows, texts


class _Scorer:
    """Score chunks in submission order, in this process or on a pool of ``jobs`` processes.

    Texts already scored are remembered (chat exports repeat 好的, 在吗, 谢谢 …), so only
    new texts are sent to the workers.
    """

    def __init__(self, model: ComplaintClassifier, jobs: int, max_cached: int = 300_000) -> None:
        self.model = model
        self.max_cached = max_cached
        self.cache: dict[str, tuple[np.ndarray, bool]] = {}
        self.queue: deque = deque()
        self.pending: set[str] = set()
        self.pool = None
        if jobs > 1:
            context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
            self.pool = context.Pool(jobs, initializer=_init_worker, initargs=(model,))

    def submit(self, texts: list[str]) -> None:
        new = [t for t in dict.fromkeys(texts) if t not in self.cache and t not in self.pending]
        self.pending.update(new)
        if self.pool is not None and new:
            work = self.pool.apply_async(_score_in_worker, (new,))
        else:
            work = score(self.model, new) if new else None
        self.queue.append((texts, new, work))

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """The scores of the oldest submitted chunk."""
        texts, new, work = self.queue.popleft()
        if new:
            proba, signal = work.get() if hasattr(work, "get") else work
            self.cache.update(zip(new, zip(proba, signal)))
            self.pending.difference_update(new)
        hits = [self.cache[t] for t in texts]
        if len(self.cache) > self.max_cached:
            keep = {t for queued, _, _ in self.queue for t in queued}
            self.cache = {t: v for t, v in self.cache.items() if t in keep}
        if not hits:
            return np.zeros((0, len(self.model.classes_)), np.float32), np.zeros(0, bool)
        return np.array([p for p, _ in hits]), np.array([s for _, s in hits])

    def __enter__(self) -> "_Scorer":
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.terminate() if exc[0] else self.pool.close()
            self.pool.join()


def _keep_least_confident(summary: Summary, probability: float, line: int, text: str, label: str, keep: int = 20):
    items = summary.least_confident
    if len(items) < keep or probability < items[-1][0]:
        items.append((probability, line, text[:200], label))
        items.sort(key=lambda item: item[0])
        del items[keep:]


class _Pool:
    """Pooled probabilities of one conversation's buyer messages.

    A conversation is a dispute when any of its messages is: each dispute label takes the
    highest probability any message gave it, ``other`` the lowest; then they are normalised.
    """

    def __init__(self, n_classes: int) -> None:
        self.best = np.zeros(n_classes, np.float32)
        self.least = np.ones(n_classes, np.float32)
        self.best_line = np.zeros(n_classes, np.int64)
        self.best_text = [""] * n_classes
        self.count = 0

    def add(self, proba: np.ndarray, line: int, text: str) -> None:
        self.count += 1
        better = proba > self.best
        for j in np.flatnonzero(better):
            self.best_line[j] = line
            self.best_text[j] = text[:200]
        self.best = np.maximum(self.best, proba)
        self.least = np.minimum(self.least, proba)

    def pooled(self, other_index: int | None) -> np.ndarray:
        pooled = self.best.copy()
        if other_index is not None:
            pooled[other_index] = self.least[other_index]
        return pooled / pooled.sum()


def _write_conversations(pools, labeller: _Labeller, model, path, fmt) -> int:
    if path is None:
        raise TableError("--by-conversation needs a conversation output path")
    other = labeller.classes.index("other") if "other" in labeller.classes else None
    with TableWriter(path, CONVERSATION_OUTPUT_COLUMNS, fmt) as writer:
        for key, pool in pools.items():
            p = pool.pooled(other)
            order = np.argsort(-p)[:3]
            j = int(order[0])
            top3 = "; ".join(f"{labeller.classes[i]}:{p[i]:.3f}" for i in order)
            writer.write([key, labeller.classes[j], labeller.names[j], f"{p[j]:.4f}",
                          str(bool(p[j] < model.review_threshold)).lower(), pool.count,
                          int(pool.best_line[j]), pool.best_text[j], top3, labeller.rules[j], labeller.advice[j]])
    return len(pools)
