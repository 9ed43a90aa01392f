"""The Dask engine: label a folder (or glob) of table parts on a cluster, one output part per input part.

Each input part is one task, which does what the local engine does, with the same code: it reads
the part with ``tabular.open_table``, picks its columns with ``batch.resolve_columns``, labels it
chunk by chunk with ``batch.label_chunk`` and writes it with ``tabular.TableWriter``. Whether the
sender column holds roles or nicknames (``batch.settle_roles``) is decided once, on the first
part, so that every part treats senders alike. The model is loaded once per worker by
``ModelPlugin`` from a path every worker can read, and checked there against its SHA-256; a
task carries only the plugin's name.

With ``by_conversation`` the labelled buyer messages go through a Dask shuffle on the
conversation id, so that a conversation split across parts is pooled whole, in input order, by
``batch.ConversationPool``.

The output folder gets the parts, ``_conversations/`` (with ``by_conversation``) and
``_manifest.json``: rows read and rows by status, per part and in total, the model's SHA-256 and
the reason of each part that failed. Names starting with ``_`` or ``.`` are not parts: Dask,
Spark and pyarrow datasets skip them too.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import json
import logging
import operator
import os
import posixpath
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

import dask
import fsspec
import numpy as np
import pandas as pd
from distributed import Client, LocalCluster, WorkerPlugin, get_worker, wait
from fsspec.implementations.local import LocalFileSystem

from .artifact import ModelError, default_model_path, load, sha256
from .batch import (CONVERSATION_OUTPUT_COLUMNS, CONVERSATION_TYPES, LABELLED, Columns, ConversationPool, Options,
                    Summary, label_chunk, output_columns, output_types, resolve_columns, settle_roles)
from .tabular import FORMATS, TableError, TableWriter, check_writable, open_table, table_format

MANIFEST = "_manifest.json"
CONVERSATIONS = "_conversations"
MESSAGE_COLUMNS = Columns(text="text", conversation="conversation_id", header=("conversation_id", "text"))
CONVERSATION_PART_COLUMNS = (CONVERSATION_OUTPUT_COLUMNS[:CONVERSATION_OUTPUT_COLUMNS.index("driving_line")]
                             + ["driving_part"]
                             + CONVERSATION_OUTPUT_COLUMNS[CONVERSATION_OUTPUT_COLUMNS.index("driving_line"):])
SUFFIXES = {"csv": ".csv", "tsv": ".tsv", "xlsx": ".xlsx", "jsonl": ".jsonl", "parquet": ".parquet"}


class ClusterError(Exception):
    """The parts or the cluster cannot be used, with the reason."""


@dataclass(frozen=True)
class Part:
    """An input part: its number, its name relative to the input and URL, and the same for its output part."""

    index: int
    name: str
    source: str
    output: str
    target: str


@dataclass(frozen=True)
class Job:
    """What a part task needs besides its part and the model (a few flags: sent with every task)."""

    model: str  # the name of the ``ModelPlugin`` holding the model on each worker
    input_format: str | None = None
    output_format: str | None = None
    encoding: str | None = None
    sheet: str | None = None
    header_row: int | None = None
    text_column: str | None = None
    role_column: str | None = None
    conversation_column: str | None = None
    buyer_values: tuple[str, ...] | None = None
    seller_values: tuple[str, ...] | None = None
    by_conversation: bool = False
    max_chars: int | None = None
    redact: bool = False
    raw_cells: bool = False
    chunk_size: int = 4000
    nicknames: bool = False  # the sender column holds nicknames (batch.settle_roles), judged on the first part


# -- parts -------------------------------------------------------------------------------------------
def find_parts(input_url: str, output_url: str, input_format: str | None = None,
               output_format: str | None = None) -> list[Part]:
    """The parts of ``input_url`` (a folder, searched recursively, or a glob) in name order, each
    with the URL of its output part in ``output_url`` (same relative name; the suffix of
    ``output_format`` when one is given)."""
    fs, root = fsspec.core.url_to_fs(input_url)
    out_fs, out_root = fsspec.core.url_to_fs(output_url)
    if fs.isdir(root):
        paths, base = fs.find(root), root
    else:
        paths = fs.glob(root) if fsspec.core.has_magic(root) else ([root] if fs.isfile(root) else [])
        base = posixpath.commonpath([posixpath.dirname(p) for p in paths]) if paths else root
    named = []
    for path in sorted(paths):
        name = posixpath.relpath(path, base)
        hidden = any(step.startswith(("_", ".")) for step in name.split("/"))
        earlier_output = type(fs) is type(out_fs) and out_root != root and path.startswith(out_root.rstrip("/") + "/")
        if not hidden and not earlier_output and (input_format or PurePosixPath(name).suffix.lower() in FORMATS):
            named.append((name, path))
    if not named:
        raise ClusterError(f"no parts found in {input_url}: expected files ending in "
                           f"{', '.join(sorted(FORMATS))} (or pass --input-format)")
    parts, targets = [], {}
    for index, (name, path) in enumerate(named):
        fmt = output_format or input_format or table_format(name)
        out_name = name if output_format is None else str(PurePosixPath(name).with_suffix(SUFFIXES[fmt]))
        target = out_fs.unstrip_protocol(posixpath.join(out_root, out_name))
        if target in targets:
            raise ClusterError(f"parts {targets[target]} and {name} would both be written to {out_name}")
        targets[target] = name
        parts.append(Part(index, name, fs.unstrip_protocol(path), out_name, target))
    if {part.source for part in parts} & set(targets):
        raise ClusterError(f"output folder {output_url} holds the input parts: write to another folder")
    return parts


@contextlib.contextmanager
def _local_source(url: str):
    """A local path to read ``url`` from: the file itself, or a temporary copy of a remote one."""
    fs, path = fsspec.core.url_to_fs(url)
    if isinstance(fs, LocalFileSystem):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="complaint-classifier-") as folder:
        local = os.path.join(folder, posixpath.basename(path))
        fs.get_file(path, local)
        yield local


@contextlib.contextmanager
def _local_target(url: str):
    """A local path to write ``url`` at: the file itself, or a temporary file uploaded once complete."""
    fs, path = fsspec.core.url_to_fs(url)
    if isinstance(fs, LocalFileSystem):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="complaint-classifier-") as folder:
        local = os.path.join(folder, posixpath.basename(path))
        yield local
        fs.put_file(local, path)


# -- the model on each worker ---------------------------------------------------------------------------
class ModelPlugin(WorkerPlugin):
    """Loads the model once on each worker, when the plugin is registered or the worker joins.

    ``path`` is where the workers find the model (``None``: the model shipped with the package they
    run); ``expected``, when the client could read the file, is the SHA-256 every worker's file must
    have. A worker that cannot load the model keeps the reason in ``error`` (no traceback in the
    worker's log); its tasks fail with that reason.
    """

    def __init__(self, path: str | None, trust: bool, threshold: float | None, expected: str | None) -> None:
        self.path, self.trust, self.threshold, self.expected = path, trust, threshold, expected
        self.name = f"complaint-classifier-model-{uuid.uuid4().hex[:12]}"
        self.model = self.digest = self.error = None

    def setup(self, worker) -> None:
        path = self.path or str(default_model_path())
        try:
            model = load(path, trust=self.trust)
            found = sha256(path)
            if self.expected and found != self.expected:
                raise ModelError(f"{path} is another model here (SHA-256 {found[:16]}…, "
                                 f"the client's is {self.expected[:16]}…)")
            if self.threshold is not None:
                model.set_params(review_threshold=self.threshold)
        except Exception as exc:  # any reason this worker cannot label, kept for its tasks and the client
            self.error = str(exc)
            return
        self.model, self.digest = model, found

    def teardown(self, worker) -> None:
        self.model = None


def _plugin_state(name: str, dask_worker=None) -> dict:
    plugin = dask_worker.plugins.get(name)
    return {"sha256": plugin.digest, "error": plugin.error} if plugin else {"sha256": None, "error": "no model plugin"}


def _worker_model(name: str):
    worker = get_worker()
    plugin = worker.plugins.get(name)
    if plugin is None or plugin.model is None:
        reason = plugin.error if plugin is not None else "the model plugin is not registered"
        raise ModelError(f"no model on worker {worker.address}: {reason}")
    return plugin.model


def _start_model(client: Client, plugin: ModelPlugin) -> str:
    """Register ``plugin`` on every worker; return the model's SHA-256, or raise one ``ModelError``."""
    client.register_plugin(plugin)
    states = client.run(_plugin_state, plugin.name)
    failed = {address: state["error"] for address, state in states.items() if state["error"]}
    hashes = {state["sha256"] for state in states.values() if not state["error"]}
    if failed or len(hashes) != 1:
        client.unregister_worker_plugin(plugin.name)
    if failed:
        reason = next(iter(failed.values()))
        raise ModelError(f"the model cannot be loaded on {len(failed)} of {len(states)} worker(s) "
                         f"({', '.join(sorted(failed))}): {reason}; every worker needs the model file at "
                         f"{plugin.path or 'the shipped path'}")
    if len(hashes) != 1:
        raise ModelError(f"the workers have different model files at {plugin.path}: "
                         f"{', '.join(sorted(h[:16] for h in hashes))}")
    return hashes.pop()


# -- one part --------------------------------------------------------------------------------------------
def _open(source: str, job: Job):
    return open_table(source, fmt=job.input_format, encoding=job.encoding, sheet=job.sheet,
                      header_row=job.header_row)


def _columns(header, job: Job) -> Columns:
    columns = resolve_columns(header, job.text_column, job.role_column, job.conversation_column, job.buyer_values,
                              job.seller_values, job.by_conversation)
    return replace(columns, nicknames=job.nicknames)


def settle_columns(parts: list[Part], job: Job) -> Columns:
    """The run's columns, from the first part that can be read: its detected columns, and whether
    its sender column holds roles or nicknames (judged on its first chunk, as the local engine does)."""
    found, error = None, None
    for part in parts:
        try:
            with _local_source(part.source) as source:
                reader = _open(source, job)
                columns = _columns(reader.columns, job)
                first = next(reader.chunks(job.chunk_size), None)
        except TableError as exc:
            error = error or TableError(f"{part.name}: {exc}")
            continue
        if first is not None:
            return settle_roles(columns, first.frame)
        found = found or columns
    if found is None:
        raise error
    return found


def label_part(part: Part, job: Job) -> tuple[dict, pd.DataFrame | None]:
    """Label one part into its output part: its counts, and (``by_conversation``) its labelled messages."""
    started = time.perf_counter()
    model = _worker_model(job.model)
    messages = []
    with _local_source(part.source) as source, _local_target(part.target) as target:
        reader = _open(source, job)
        columns = _columns(reader.columns, job)
        options = Options(job.max_chars or model.max_chars, job.redact)
        header = output_columns(reader.columns)
        text = header[reader.columns.index(columns.text)]
        summary = Summary(columns, reader.encoding)
        with TableWriter(target, header, job.output_format, raw_cells=job.raw_cells, sheet_name=reader.sheet_name,
                         types=output_types(reader.columns, reader.types, columns.text)) as writer:
            for chunk in reader.chunks(job.chunk_size):
                out = label_chunk(chunk.frame, model, columns, options, chunk.errors, chunk.damaged)
                writer.write_frame(out)
                if job.by_conversation:
                    messages.append(_messages(out, chunk.lines, reader.columns, columns, part.index,
                                              summary.rows_read))
                summary.add(out, chunk.lines, text)
        summary.check()
    counts = {"input": part.name, "output": part.output, "rows_read": summary.rows_read,
              "statuses": dict(sorted(summary.statuses.items())), "labelled": summary.labelled,
              "disputes": summary.disputes, "needs_review": summary.needs_review, "encoding": summary.encoding,
              "notes": list(reader.notes), "worker": get_worker().address, "seconds": round(time.perf_counter() - started, 2)}
    if not job.by_conversation:
        return counts, None
    return counts, pd.concat(messages, ignore_index=True) if messages else _message_frame()


# -- conversations ---------------------------------------------------------------------------------------
def _message_frame(conversation=(), text=(), label=(), confidence=(), needs_review=(), part=(), row=(),
                   line=()) -> pd.DataFrame:
    """Labelled buyer messages as they travel through the shuffle (the text cut to 200 characters,
    as ``ConversationPool`` keeps it); ``conversation_id`` and ``text`` first, as ``MESSAGE_COLUMNS`` says."""
    return pd.DataFrame({
        "conversation_id": pd.Series(conversation, dtype=object).map(str),
        "text": pd.Series(text, dtype=object).map(lambda value: str(value)[:200]),
        "label": pd.Series(label, dtype=object),
        "confidence": pd.Series(confidence, dtype="float64"),
        "needs_review": pd.Series(needs_review, dtype=bool),
        "part": pd.Series(part, dtype="int64"),
        "row": pd.Series(row, dtype="int64"),
        "line": pd.Series(line, dtype="int64"),
    })


def _messages(out: pd.DataFrame, lines, header, columns: Columns, part: int, first_row: int) -> pd.DataFrame:
    """The labelled rows of a finished chunk, as ``_message_frame`` rows."""
    at = np.flatnonzero((out["label"] != "").to_numpy())
    rows = out.iloc[at]
    return _message_frame(rows.iloc[:, list(header).index(columns.conversation)].tolist(),
                          rows.iloc[:, list(header).index(columns.text)].tolist(), rows["label"].tolist(),
                          rows["confidence"].astype(float).tolist(), rows["needs_review"].astype(bool).tolist(),
                          [part] * len(at), (first_row + at).tolist(), np.asarray(lines)[at].tolist())


def pool_conversations(messages: pd.DataFrame, names: list[str], target: str, job: Job) -> dict:
    """Pool one shuffle partition of messages (whole conversations) with ``ConversationPool``, in
    input order, and write its conversations to ``target``."""
    messages = messages.sort_values(["part", "row"], kind="stable").reset_index(drop=True)
    pool = ConversationPool()
    pool.add(messages, range(len(messages)), MESSAGE_COLUMNS)
    at = CONVERSATION_OUTPUT_COLUMNS.index("driving_line")
    counted = 0
    with _local_target(target) as path, TableWriter(path, CONVERSATION_PART_COLUMNS, job.output_format,
                                                    raw_cells=job.raw_cells, types=CONVERSATION_TYPES) as writer:
        for row in pool.rows():
            driving = row[at]  # the message's position in ``messages``
            writer.write(row[:at] + [names[messages.at[driving, "part"]], int(messages.at[driving, "line"])]
                         + row[at + 1:])
            counted += row[CONVERSATION_OUTPUT_COLUMNS.index("buyer_messages")]
    if counted + pool.without_id != len(messages):
        raise AssertionError(f"conversation count mismatch: pooled {len(messages)} messages, counted {counted}")
    return {"output": posixpath.basename(target), "conversations": len(pool), "messages": len(messages),
            "without_conversation": pool.without_id}


def _conversation_tasks(messages: list, parts: list[Part], output_url: str, job: Job) -> list:
    """Delayed tasks: shuffle the messages on the conversation id, then pool and write each partition."""
    import dask.dataframe as dd

    frame = dd.from_delayed(messages, meta=_message_frame(), verify_meta=False)
    shuffled = frame.shuffle("conversation_id", npartitions=len(parts))
    fs, root = fsspec.core.url_to_fs(output_url)
    fmt = job.output_format or table_format(parts[0].target)
    names = [part.name for part in parts]
    return [dask.delayed(pool_conversations, pure=False)(
                partition, names, fs.unstrip_protocol(posixpath.join(root, CONVERSATIONS, f"part-{i:05d}{SUFFIXES[fmt]}")),
                replace(job, output_format=fmt))
            for i, partition in enumerate(shuffled.to_delayed())]


# -- the run ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def connect(scheduler: str | None = None, jobs: int | None = None):
    """A ``Client`` on the cluster at ``scheduler``, or on a new local cluster of ``jobs`` worker
    processes (one thread each; worker logs quiet, as failures go into the manifest)."""
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, ValueError, TypeError) as exc:
            raise ClusterError(f"cannot connect to the Dask scheduler at {scheduler}: {exc}") from None
        with client:
            try:
                client.wait_for_workers(1, timeout=60)
            except TimeoutError:
                raise ClusterError(f"no worker joined the Dask scheduler at {scheduler} within 60 s") from None
            yield client
        return
    with LocalCluster(n_workers=jobs or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                      dashboard_address=":0", silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        yield client


def _dashboard(client: Client) -> str:
    if not client.run_on_scheduler(_has_bokeh):
        return "dashboard: not available (the scheduler needs bokeh: pip install bokeh)"
    return f"dashboard: {client.dashboard_link}"


def _has_bokeh() -> bool:
    return importlib.util.find_spec("bokeh") is not None


def _reason(exc: BaseException) -> str:
    """An exception as one line."""
    message = " ".join(str(exc).split())
    return message if isinstance(exc, (TableError, ModelError)) else f"{type(exc).__name__}: {message}"


def _show(futures, progress: bool) -> None:
    """Wait for ``futures``, drawing Dask's progress bar (on stderr) when asked."""
    if progress:
        from distributed import progress as progress_bar

        with contextlib.redirect_stdout(sys.stderr):
            progress_bar(futures)
    wait(futures)


def label_parts(
    input_url: str,
    output_url: str,
    *,
    model_path: str | None = None,
    trust: bool = False,
    scheduler: str | None = None,
    jobs: int | None = None,
    text_column: str | None = None,
    role_column: str | None = None,
    buyer_values=None,
    seller_values=None,
    conversation_column: str | None = None,
    by_conversation: bool = False,
    input_format: str | None = None,
    output_format: str | None = None,
    encoding: str | None = None,
    sheet: str | None = None,
    header_row: int | None = None,
    max_chars: int | None = None,
    redact: bool = False,
    raw_cells: bool = False,
    threshold: float | None = None,
    chunk_size: int = 4000,
    retries: int = 2,
    progress: bool = False,
    log=None,
    on_columns=None,
) -> dict:
    """Label every part of ``input_url`` into ``output_url`` on a Dask cluster; return the manifest.

    ``scheduler`` is the address of a running cluster; without it a local cluster of ``jobs``
    worker processes is started. A part that fails is retried ``retries`` times; one that still
    fails is listed under ``failed`` (the other parts are written). ``log`` is called with lines
    for the user, ``on_columns`` with the run's ``Columns``. Raises ``ClusterError``,
    ``ModelError`` or ``TableError`` for a run that cannot start.
    """
    log = log or (lambda line: None)
    started = time.perf_counter()
    parts = find_parts(input_url, output_url, input_format, output_format)
    _prepare_output(output_url)
    path = str(model_path) if model_path else str(default_model_path())
    expected = sha256(path) if os.path.isfile(path) else None
    plugin = ModelPlugin(str(model_path) if model_path else None, trust, threshold, expected)
    job = Job(plugin.name, input_format, output_format, encoding, sheet, header_row, text_column, role_column,
              conversation_column, tuple(buyer_values) if buyer_values else None,
              tuple(seller_values) if seller_values else None, by_conversation, max_chars, redact, raw_cells,
              chunk_size)
    with connect(scheduler, jobs) as client:
        workers = len(client.scheduler_info()["workers"])
        log(f"dask: {'scheduler ' + scheduler if scheduler else 'local cluster'}, {workers} worker(s), "
            f"{len(parts)} part(s); {_dashboard(client)}")
        model_sha = _start_model(client, plugin)
        try:
            columns = client.submit(settle_columns, parts, job, pure=False).result()
            if on_columns:
                on_columns(columns)
            job = replace(job, buyer_values=columns.buyer_values, seller_values=columns.seller_values,
                          nicknames=columns.nicknames)
            counts, messages = _submit_parts(client, parts, job, retries)
            _show(counts, progress)
            manifest = _manifest(parts, counts, input_url, output_url, model_path, model_sha, columns)
            for entry in manifest["failed"]:
                log(f"part {entry['input']} failed: {entry['error']}")
            if by_conversation and manifest["failed"]:
                log("conversations not written: a conversation may continue in a part that failed")
                manifest["conversations"] = {"error": "not written: some parts failed"}
            elif by_conversation:
                log(f"conversations: shuffling {manifest['labelled']} labelled messages by conversation id")
                manifest["conversations"] = _conversations(client, messages, parts, output_url, job, retries,
                                                           progress)
                if "error" in manifest["conversations"]:
                    log(f"conversations not written in full: {manifest['conversations']['error']}")
                elif manifest["conversations"]["messages"] != manifest["labelled"]:
                    raise AssertionError(f"conversation count mismatch: {manifest['labelled']} labelled, "
                                         f"{manifest['conversations']['messages']} pooled")
        finally:
            client.unregister_worker_plugin(plugin.name)
    manifest["seconds"] = round(time.perf_counter() - started, 2)
    _write_manifest(output_url, manifest)
    return manifest


def _submit_parts(client: Client, parts: list[Part], job: Job, retries: int) -> tuple[list, list]:
    """One ``label_part`` task per part; futures of its counts and of its messages (kept on the workers)."""
    outcomes = [client.submit(label_part, part, job, pure=False, retries=retries,
                              key=f"label-part-{part.index}-{job.model[-12:]}") for part in parts]
    return ([client.submit(operator.getitem, outcome, 0, pure=False) for outcome in outcomes],
            [client.submit(operator.getitem, outcome, 1, pure=False) for outcome in outcomes])


def _prepare_output(output_url: str) -> None:
    fs, root = fsspec.core.url_to_fs(output_url)
    if fs.isfile(root):
        raise ClusterError(f"output is a file, not a folder: {output_url}")
    fs.makedirs(root, exist_ok=True)
    if isinstance(fs, LocalFileSystem):
        check_writable(os.path.join(root, MANIFEST))


def _manifest(parts, counts, input_url, output_url, model_path, model_sha, columns: Columns) -> dict:
    entries, failed = [], []
    for part, future in zip(parts, counts):
        if future.status == "finished":
            entries.append({**future.result(), "status": "written"})
        else:
            failed.append({"input": part.name, "status": "failed", "error": _reason(future.exception())})
    statuses = Counter()
    for entry in entries:
        statuses.update(entry["statuses"])
    rows_read = sum(entry["rows_read"] for entry in entries)
    if sum(statuses.values()) != rows_read:
        raise AssertionError(f"row count mismatch: read {rows_read}, accounted for {sum(statuses.values())}")
    return {
        "engine": "dask", "created": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "input": str(input_url), "output": str(output_url),
        "model": {"path": str(model_path) if model_path else "default", "sha256": model_sha},
        "columns": {"text": columns.text, "role": columns.role, "conversation": columns.conversation,
                    "time": columns.time},
        "rows_read": rows_read, "statuses": dict(sorted(statuses.items())),
        "labelled": sum(statuses[s] for s in LABELLED),
        "parts": sorted(entries + failed, key=lambda entry: entry["input"]), "failed": failed,
    }


def _conversations(client: Client, messages: list, parts: list[Part], output_url: str, job: Job, retries: int,
                   progress: bool) -> dict:
    """Shuffle, pool and write the conversations: their counts, or the ``error`` that stopped them."""
    futures = client.compute(_conversation_tasks(messages, parts, output_url, job), retries=retries)
    _show(futures, progress)
    failed = [future for future in futures if future.status != "finished"]
    if failed:
        return {"error": _reason(failed[0].exception())}
    results = [future.result() for future in futures]
    return {"folder": CONVERSATIONS, "conversations": sum(r["conversations"] for r in results),
            "messages": sum(r["messages"] for r in results),
            "without_conversation": sum(r["without_conversation"] for r in results), "parts": results}


def _write_manifest(output_url: str, manifest: dict) -> None:
    """Write the manifest under a temporary name, then move it into place."""
    fs, root = fsspec.core.url_to_fs(output_url)
    temporary = posixpath.join(root, f".{MANIFEST}.{uuid.uuid4().hex[:8]}.part")
    with fs.open(temporary, "wb") as fh:
        fh.write((json.dumps(manifest, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
    fs.mv(temporary, posixpath.join(root, MANIFEST))
