"""Label a whole table of messages, in chunks, on several processes, losing nothing.

``label_chunk`` is the only labelling logic: one function over a pandas chunk of input rows,
called by the local engine here (``label_table``) and by the Dask engine (``distributed``). It
returns the chunk with its original columns unchanged plus the label columns and a ``status``:

* ``ok``          labelled;
* ``truncated``   labelled from the first ``max_chars`` characters;
* ``ok_decoding_errors`` / ``truncated_decoding_errors``
                  the same, from text in which undecodable bytes were replaced with U+FFFD;
* ``empty``       no text to label;
* ``not_buyer``   a seller or system message (only buyer messages are labelled);
* ``error:<why>`` the row could not be parsed as it stands (kept as far as it was read).

The local engine splits ``label_chunk`` at its seam: the main process reads, ``prepare``-s and
``finish``-es chunks and writes them in order; worker processes only turn texts into
``Decisions`` (compact arrays).
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from . import knowledge
from .decision import REVIEW_REASONS, Decisions, labelled_status
from .model import ComplaintClassifier
from .redact import redact as redact_text
from .tabular import (BUYER_VALUES, CONVERSATION_COLUMNS, ROLE_COLUMNS, TEXT_COLUMNS, TIME_COLUMNS,
                      TableError, TableWriter, check_column, detect_column, looks_like_seller, open_table)

LABEL_COLUMNS = ["label", "label_name", "confidence", "dispute_probability", "is_dispute", "needs_review",
                 "review_reason", "rule", "advice", "status"]
CONVERSATION_OUTPUT_COLUMNS = ["conversation_id", "label", "label_name", "confidence", "is_dispute", "needs_review",
                               "other_disputes", "buyer_messages", "driving_line", "driving_message", "rule",
                               "advice"]
LABEL_TYPES = {"confidence": "float64", "dispute_probability": "float64", "is_dispute": "bool",
               "needs_review": "bool"}  # for Parquet output; the other label columns are text
CONVERSATION_TYPES = {"confidence": "float64", "is_dispute": "bool", "needs_review": "bool",
                      "buyer_messages": "int64", "driving_line": "int64"}
LABELLED = ("ok", "truncated", "ok_decoding_errors", "truncated_decoding_errors")


@dataclass
class Columns:
    """The input columns the run uses (``None`` where there is none) and how buyers are told apart."""

    text: str
    role: str | None = None
    conversation: str | None = None
    time: str | None = None
    buyer_values: tuple[str, ...] = tuple(BUYER_VALUES)
    seller_values: tuple[str, ...] | None = None
    header: tuple[str, ...] = ()
    nicknames: bool = False

    def is_buyer(self, roles: pd.Series) -> np.ndarray:
        """Which rows are buyer messages, from the sender column's values.

        With ``seller_values`` every sender that is not one of them is a buyer; when the sender
        column holds nicknames (``nicknames``), every sender that does not look like the shop
        (``tabular.looks_like_seller``); otherwise only the buyer values are buyers."""
        values = roles.fillna("").astype(str).str.strip().str.lower()
        if self.seller_values is not None:
            return ~values.isin(self.seller_values).to_numpy()
        if self.nicknames:
            return ~looks_like_seller(values).to_numpy()
        return values.isin(self.buyer_values).to_numpy()


@dataclass
class Options:
    """What a run does besides labelling: how much text to use, whether to mask personal data."""

    max_chars: int = 2000
    redact: bool = False


@dataclass
class Summary:
    """What a run did: rows read and how each ended."""

    columns: Columns
    encoding: str | None
    notes: list[str] = field(default_factory=list)  # what the reader says about the input (``TableReader.notes``)
    rows_read: int = 0
    statuses: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)
    disputes: int = 0
    needs_review: int = 0
    least_confident: list = field(default_factory=list)
    conversations: int = 0
    conversation_labels: Counter = field(default_factory=Counter)
    without_conversation: int = 0

    @property
    def labelled(self) -> int:
        return sum(self.statuses[s] for s in LABELLED)

    @property
    def truncated(self) -> int:
        """Rows labelled from their first ``max_chars`` characters."""
        return self.statuses["truncated"] + self.statuses["truncated_decoding_errors"]

    @property
    def damaged(self) -> int:
        """Rows labelled from text with undecodable bytes replaced."""
        return self.statuses["ok_decoding_errors"] + self.statuses["truncated_decoding_errors"]

    @property
    def skipped(self) -> dict[str, int]:
        return {k: v for k, v in sorted(self.statuses.items()) if k not in LABELLED}

    def add(self, out: pd.DataFrame, lines, text_column: str) -> None:
        """Count a finished chunk (the output of ``label_chunk``)."""
        self.rows_read += len(out)
        self.statuses.update(out["status"].tolist())
        labelled = out["label"] != ""
        self.labels.update(out.loc[labelled, "label"].tolist())
        self.disputes += int(out.loc[labelled, "is_dispute"].astype(bool).sum())
        self.needs_review += int(out.loc[labelled, "needs_review"].astype(bool).sum())
        confidence = out.loc[labelled, "confidence"].astype(float)
        for position in confidence.nsmallest(20).index:
            self._keep_least_confident(float(confidence[position]), int(lines[out.index.get_loc(position)]),
                                       str(out.at[position, text_column]), str(out.at[position, "label"]))

    def _keep_least_confident(self, probability: float, line: int, text: str, label: str, keep: int = 20) -> None:
        items = self.least_confident
        if len(items) < keep or probability < items[-1][0]:
            items.append((probability, line, text[:200], label))
            items.sort(key=lambda item: item[0])
            del items[keep:]

    def check(self) -> None:
        """Raise if the rows written do not add up to the rows read."""
        if sum(self.statuses.values()) != self.rows_read:
            raise AssertionError(f"row count mismatch: read {self.rows_read}, accounted for {sum(self.statuses.values())}")


def resolve_columns(header, text=None, role=None, conversation=None, buyer_values=None, seller_values=None,
                    by_conversation=False) -> Columns:
    """Pick the text, sender, conversation and time columns: the flags first, then common names."""
    text = check_column(header, text, "text") if text else detect_column(header, TEXT_COLUMNS, "text")
    role = check_column(header, role, "role") if role else detect_column(header, ROLE_COLUMNS, "role", required=False)
    if conversation:
        conversation = check_column(header, conversation, "conversation")
    else:
        conversation = detect_column(header, CONVERSATION_COLUMNS, "conversation", required=by_conversation)
    time = detect_column(header, TIME_COLUMNS, "time", required=False)
    buyers = tuple(v.strip().lower() for v in buyer_values) if buyer_values else tuple(BUYER_VALUES)
    sellers = tuple(v.strip().lower() for v in seller_values) if seller_values else None
    return Columns(text, role, conversation, time, buyers, sellers, tuple(header))


def settle_roles(columns: Columns, sample: pd.DataFrame) -> Columns:
    """When the sender column of ``sample`` (a first chunk) holds nicknames rather than roles (a
    千牛-style export: no value is a buyer role), tell buyers from the shop by ``looks_like_seller``."""
    if columns.role is None or columns.seller_values is not None:
        return columns
    values = sample[columns.role].fillna("").astype(str).str.strip().str.lower()
    values = values[values != ""]
    if not len(values) or values.isin(columns.buyer_values).any():
        return columns
    return replace(columns, nicknames=True)


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


def output_types(header: list[str], input_types: dict, text: str) -> dict:
    """Arrow types of the output columns for Parquet: the types of a Parquet input's columns
    (the text column is text, redacted or not), then ``LABEL_TYPES``."""
    typed = {new: input_types[old] for old, new in zip(header, output_columns(header))
             if old in input_types and old != text}
    return {**typed, **LABEL_TYPES}


# -- the one labelling function, in two halves -----------------------------------------------------
def prepare(frame: pd.DataFrame, columns: Columns, options: Options, errors=None,
            damaged=None) -> tuple[list[str], list[str]]:
    """The texts to label in a chunk and every row's status (rows with a ``LABELLED`` status give a text).

    ``errors`` (a reason or ``None`` per row) and ``damaged`` (whether a row's bytes needed
    replacement characters) come from the reader."""
    texts_all = frame[columns.text].fillna("").astype(str).tolist()
    buyer = columns.is_buyer(frame[columns.role]) if columns.role else np.ones(len(frame), bool)
    statuses, texts = [], []
    for i, text in enumerate(texts_all):
        error = errors[i] if errors is not None else None
        if error:
            statuses.append("error:" + error.replace(",", ";"))
        elif not buyer[i]:
            statuses.append("not_buyer")
        elif not text.strip():
            statuses.append("empty")
        else:
            statuses.append(labelled_status(len(text) > options.max_chars, damaged is not None and bool(damaged[i])))
            texts.append(text[: options.max_chars])
    return texts, statuses


def finish(frame: pd.DataFrame, statuses: list[str], decisions: Decisions, model: ComplaintClassifier,
           columns: Columns, options: Options) -> pd.DataFrame:
    """The chunk with its original columns (renamed where they clash) and the label columns."""
    out = frame.copy()
    out.columns = output_columns(list(frame.columns))[: len(frame.columns)]
    if options.redact:
        at = list(frame.columns).index(columns.text)
        out.iloc[:, at] = out.iloc[:, at].fillna("").astype(str).map(redact_text)
    labelled = np.array([s in LABELLED for s in statuses], dtype=bool)
    tables = _label_tables(tuple(str(c) for c in model.classes_))
    n = len(frame)

    def column(values, empty):
        full = np.full(n, empty, dtype=object)
        full[labelled] = values
        return full

    index = decisions.label
    out["label"] = column(tables["label"][index], "")
    out["label_name"] = column(tables["name"][index], "")
    out["confidence"] = column(np.round(decisions.probability.astype(float), 4), None)
    out["dispute_probability"] = column(np.round(decisions.dispute_probability.astype(float), 4), None)
    out["is_dispute"] = column(decisions.is_dispute.astype(bool), None)
    out["needs_review"] = column(decisions.needs_review.astype(bool), None)
    out["review_reason"] = column(np.array(["；".join(REVIEW_REASONS[r] for r in decisions.reasons(i, model.review_threshold))
                                            for i in range(len(decisions))], dtype=object), "")
    out["rule"] = column(tables["rule"][index], "")
    out["advice"] = column(tables["advice"][index], "")
    out["status"] = statuses
    return out


def label_chunk(frame: pd.DataFrame, model: ComplaintClassifier, columns: Columns, options: Options,
                errors=None, damaged=None) -> pd.DataFrame:
    """Label one chunk of input rows (``prepare``, ``model.decide``, ``finish``)."""
    texts, statuses = prepare(frame, columns, options, errors, damaged)
    return finish(frame, statuses, model.decide(texts), model, columns, options)


def _label_tables(classes: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per model class: id, Chinese name, rule and advice (looked up once per label, not per row)."""
    entries = [knowledge.info(c) for c in classes]
    return {"label": np.array(classes, dtype=object), "name": np.array([e.name for e in entries], dtype=object),
            "rule": np.array([e.rule for e in entries], dtype=object),
            "advice": np.array([e.advice_text() for e in entries], dtype=object)}


# -- conversations ---------------------------------------------------------------------------------
class ConversationPool:
    """One label per conversation from its buyer messages, by the taxonomy's precedence.

    A conversation is a dispute when any of its messages is; its label is the most serious
    dispute label its messages raise (fraud > counterfeit > … ), its confidence the probability
    of the message that carries that label, and the other disputes it raised are listed.
    Messages with a blank conversation id belong to no conversation; ``without_id`` counts them.
    """

    def __init__(self) -> None:
        self._conversations: dict[str, dict] = {}
        self.without_id = 0

    def __len__(self) -> int:
        return len(self._conversations)

    def add(self, out: pd.DataFrame, lines, columns: Columns) -> None:
        """Take the labelled rows of a finished chunk (the output of ``label_chunk``)."""
        header = list(columns.header)
        keys = out.iloc[:, header.index(columns.conversation)]
        keys = keys.where(keys.notna(), "").astype(str).str.strip()
        labelled = (out["label"] != "").to_numpy()
        blank = (keys == "").to_numpy()
        self.without_id += int((labelled & blank).sum())
        labelled = labelled & ~blank
        if not labelled.any():
            return
        rows = pd.DataFrame({
            "key": keys.to_numpy()[labelled],
            "label": out["label"].to_numpy()[labelled],
            "probability": out["confidence"].to_numpy()[labelled].astype(float),
            "line": np.asarray(lines)[labelled],
            "text": out.iloc[labelled, header.index(columns.text)].astype(str).str[:200].to_numpy(),
            "review": out["needs_review"].to_numpy()[labelled].astype(bool),
        })
        for key, count in rows.groupby("key", sort=False).size().items():
            self._conversations.setdefault(key, {"count": 0, "best": {}})["count"] += int(count)
        # a dispute label keeps its surest message, ``other`` its least sure one; the first on ties
        rows["rank"] = np.where(rows["label"] == "other", -rows["probability"], rows["probability"])
        best = rows.sort_values("rank", ascending=False, kind="stable").drop_duplicates(["key", "label"])
        for key, label, probability, line, text, review, _ in best.itertuples(index=False):
            kept = self._conversations[key]["best"].get(label)
            if kept is None or (probability < kept[0] if label == "other" else probability > kept[0]):
                self._conversations[key]["best"][label] = (probability, int(line), text, review)

    def rows(self):
        """Output rows, in the order the conversations first appeared."""
        order = {label: rank for rank, label in enumerate(knowledge.labels())}
        for key, entry in self._conversations.items():
            disputes = sorted((label for label in entry["best"] if label != "other"), key=order.get)
            label = disputes[0] if disputes else "other"
            probability, line, text, review = entry["best"][label]
            info = knowledge.info(label)
            yield [key, label, info.name, round(probability, 4), bool(disputes), review, "; ".join(disputes[1:]),
                   entry["count"], line, text, info.rule, info.advice_text()]


# -- the local engine --------------------------------------------------------------------------------
def label_table(
    input_path,
    output_path,
    model: ComplaintClassifier,
    *,
    text_column: str | None = None,
    role_column: str | None = None,
    buyer_values=None,
    seller_values=None,
    conversation_column: str | None = None,
    by_conversation: bool = False,
    conversation_output=None,
    input_format: str | None = None,
    output_format: str | None = None,
    encoding: str | None = None,
    sheet: str | None = None,
    header_row: int | None = None,
    jobs: int | None = None,
    chunk_size: int = 4000,
    max_chars: int | None = None,
    redact: bool = False,
    raw_cells: bool = False,
    progress=None,
    on_columns=None,
) -> Summary:
    """Label every buyer row of ``input_path`` into ``output_path``; return the ``Summary``.

    ``progress`` is called with the number of rows done after each chunk; ``on_columns`` with
    the resolved ``Columns`` before any work starts.
    """
    reader = open_table(input_path, fmt=input_format, encoding=encoding, sheet=sheet, header_row=header_row)
    columns = resolve_columns(reader.columns, text_column, role_column, conversation_column, buyer_values,
                              seller_values, by_conversation)
    options = Options(max_chars or model.max_chars, redact)
    summary = Summary(columns, reader.encoding, reader.notes)
    pool = ConversationPool() if columns.conversation and by_conversation else None
    jobs = max(1, jobs or os.cpu_count() or 1)
    chunks = reader.chunks(chunk_size)
    with TableWriter(output_path, output_columns(reader.columns), output_format, raw_cells=raw_cells,
                     sheet_name=reader.sheet_name, types=output_types(reader.columns, reader.types, columns.text)
                     ) as writer, _Workers(model, jobs) as workers:
        pending: deque = deque()

        def flush() -> None:
            chunk, statuses = pending.popleft()
            out = finish(chunk.frame, statuses, workers.result(), model, summary.columns, options)
            writer.write_frame(out)
            summary.add(out, chunk.lines, out.columns[chunk.frame.columns.get_loc(summary.columns.text)])
            if pool is not None:
                pool.add(out, chunk.lines, summary.columns)
            if progress:
                progress(len(out))

        for k, chunk in enumerate(chunks):
            if k == 0:
                summary.columns = settle_roles(columns, chunk.frame)
                if on_columns:
                    on_columns(summary.columns)
            texts, statuses = prepare(chunk.frame, summary.columns, options, chunk.errors, chunk.damaged)
            workers.submit(texts)
            pending.append((chunk, statuses))
            while len(pending) > 2 * jobs:
                flush()
        if not pending and on_columns and summary.rows_read == 0:
            on_columns(summary.columns)
        while pending:
            flush()
    if pool is not None:  # after the labelled file is in place: an interrupted run never leaves only this one
        summary.conversation_labels = _write_conversations(pool, conversation_output, output_format, raw_cells)
        summary.conversations = len(pool)
        summary.without_conversation = pool.without_id
    summary.check()
    return summary


def _write_conversations(pool: ConversationPool, path, fmt, raw_cells: bool) -> Counter:
    """Write one row per conversation; return the conversations per label."""
    if path is None:
        raise TableError("--by-conversation needs a conversation output path")
    labels: Counter = Counter()
    with TableWriter(path, CONVERSATION_OUTPUT_COLUMNS, fmt, raw_cells=raw_cells, types=CONVERSATION_TYPES) as writer:
        for row in pool.rows():
            writer.write(row)
            labels[row[1]] += 1
    return labels


class WorkerError(Exception):
    """A worker process ended before it returned its results (killed, or out of memory)."""


_FORK = hasattr(os, "fork")  # POSIX: fork and signal masks; elsewhere workers are spawned
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _work(model: ComplaintClassifier, conn, main_ends) -> None:
    """A worker process: decide on each chunk of texts that arrives on ``conn`` until it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the main process stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if _FORK:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    for end in main_ends:  # copied by fork: closed, so that the main process's death ends the pipe
        end.close()
    try:
        while True:
            texts = conn.recv()
            try:
                result = model.decide(texts)
            except Exception as exc:  # raised again in the main process
                result = exc
            conn.send(result)
    except (EOFError, OSError):  # the main process closed the pipe, or died
        return


def _feed(conn, tasks: queue.SimpleQueue) -> None:
    """Send each task to a worker, so that the main process never blocks on a full pipe."""
    while (texts := tasks.get()) is not None:
        try:
            conn.send(texts)
        except OSError:  # the worker is gone; ``result`` says so
            return


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: object
    tasks: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    feeder: threading.Thread | None = None


class _Workers:
    """Turn chunks of texts into ``Decisions`` in submission order, here or on ``jobs`` processes.

    Chunk ``k`` goes to worker ``k % jobs`` over a pipe of its own, so results come back in order
    with no shared queue or lock. A worker that dies raises ``WorkerError`` at its next result, and
    leaving the ``with`` block stops the workers within seconds, whatever they are doing.
    """

    def __init__(self, model: ComplaintClassifier, jobs: int) -> None:
        self.model = model
        self.queue: deque = deque()
        self.workers: list[_Worker] = []
        self.sent = 0
        if jobs > 1:
            try:
                self._start(jobs)
            except BaseException:
                self._stop(abort=True)
                raise

    def _start(self, jobs: int) -> None:
        context = multiprocessing.get_context("fork" if _FORK else "spawn")
        # SIGINT and SIGTERM wait until a new worker has set its own handlers (it inherits the mask)
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS) if _FORK else None
        try:
            for _ in range(jobs):
                conn, child = context.Pipe()
                main_ends = [worker.conn for worker in self.workers] + [conn] if _FORK else []
                process = context.Process(target=_work, args=(self.model, child, main_ends), daemon=True)
                process.start()
                child.close()
                self.workers.append(_Worker(process, conn))
        finally:
            if _FORK:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        for worker in self.workers:  # threads only after the last fork
            worker.feeder = threading.Thread(target=_feed, args=(worker.conn, worker.tasks), daemon=True)
            worker.feeder.start()

    def submit(self, texts: list[str]) -> None:
        if not self.workers:
            self.queue.append(self.model.decide(texts))
            return
        worker = self.workers[self.sent % len(self.workers)]
        worker.tasks.put(texts)
        self.queue.append(worker)
        self.sent += 1

    def result(self) -> Decisions:
        """The decisions on the oldest submitted chunk."""
        work = self.queue.popleft()
        if not self.workers:
            return work
        try:
            result = work.conn.recv()
        except (EOFError, OSError):
            work.process.join(1)
            code = work.process.exitcode
            how = f"killed by {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}"
            raise WorkerError(f"a worker process ended unexpectedly ({how})") from None
        if isinstance(result, Exception):
            raise result
        return result

    def _stop(self, abort: bool) -> None:
        """End the workers: at once on ``abort``, else when they find their pipes closed; kill any
        that is still there after two seconds."""
        abort = abort or bool(self.queue)  # a result not read: its worker may be blocked sending it
        for worker in self.workers:
            worker.tasks.put(None)
            if abort:
                worker.process.terminate()
            else:
                worker.feeder.join()  # idle: every task was sent and answered
                worker.conn.close()
        deadline = time.monotonic() + 2
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            if worker.feeder is not None:
                worker.feeder.join(1)  # a send in progress fails once the worker is gone
            worker.conn.close()
        self.workers = []

    def __enter__(self) -> "_Workers":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self._stop(abort=exc_type is not None)
