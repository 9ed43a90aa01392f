"""Read and write tables of messages: CSV, TSV, XLSX, JSONL and Parquet, streamed in chunks.

Reading never drops a row. A CSV line with a broken quote or the wrong number of fields (an
XLSX row with more cells than the header) comes back with an ``error`` and as much of its
content as could be recovered; bytes that are not valid in the file's encoding, and lone
surrogates from any format (a JSON ``"\\ud83d"``), are replaced (U+FFFD) and the row is marked
``damaged``.
Hostile files end in a clear ``TableError``: an XLSX that would expand beyond the limits
below, a line longer than ``MAX_LINE_CHARS``, a JSON line nested too deep.

Writing is injection-safe: a cell or column name from the input that starts like a formula
(``= + - @``, tab, carriage return) is written to CSV/TSV behind a ``'`` (the OWASP rule, so
Excel shows it as text; ``raw_cells=True`` turns this off for machine consumers) and to XLSX as
a string cell, never a formula. Our readers undo the prefix in a file that one of our writers
made (``is_own_output``), so a round trip loses nothing; any other file is read as it is.

Parquet is read a row group at a time and written in row groups of ``PARQUET_ROW_GROUP`` rows,
so memory stays bounded; a Parquet input's numbers, booleans, dates and timestamps come back as
strings (like every other format) and are written back with their own types (``types``).
"""
from __future__ import annotations

import codecs
import csv
import json
import math
import os
import re
import sys
import tempfile
import zipfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .text import SURROGATES
from .text import repair as _repair

TEXT_COLUMNS = ["text", "message", "content", "msg", "body", "内容", "聊天内容", "聊天內容", "消息内容", "消息",
                "聊天记录", "对话内容", "会话内容", "咨询内容", "买家留言", "留言", "文本", "评论", "评论内容", "评价内容",
                "买家评价", "追评内容", "评价", "review", "comment"]
ROLE_COLUMNS = ["role", "sender", "sender_type", "speaker", "from", "发送方", "发送者", "发送人", "角色", "身份",
                "说话人"]
CONVERSATION_COLUMNS = ["conversation_id", "session_id", "conversation", "session", "chat_id", "dialog_id",
                        "会话ID", "会话id", "会话编号", "会话", "订单号", "order_id"]
TIME_COLUMNS = ["time", "timestamp", "datetime", "created_at", "date", "时间", "发送时间", "消息时间", "日期"]
BUYER_VALUES = ["买家", "buyer", "customer", "客户", "顾客", "用户", "user", "消费者"]
SELLER_VALUES = ["卖家", "seller", "客服", "商家", "店家", "店主", "掌柜", "小二", "shop", "agent", "staff", "系统",
                 "system", "机器人", "bot"]
_SELLER_NICKNAME = re.compile(r"旗舰店|专营店|专卖店|官方|客服|商家|卖家|店长|掌柜|小二|:|：")

FORMATS = {".csv": "csv", ".tsv": "tsv", ".xlsx": "xlsx", ".jsonl": "jsonl", ".ndjson": "jsonl",
           ".parquet": "parquet"}
ENCODINGS = ["utf-8", "gb18030"]
SAMPLE_BYTES = 1 << 16        # the encoding is judged on this much text from the first non-ASCII byte ...
MAX_ASCII_PREFIX = 1 << 25    # ... searched for up to 32 MiB into the file
MAX_RECORD_CHARS = 1 << 22    # a quoted field longer than this is taken as an unbalanced quote
MAX_LINE_CHARS = 1 << 24      # a physical line is read up to this many characters; the rest is dropped and the row marked
HEADER_SEARCH_ROWS = 10       # the header is the first of these rows that names a known column
MAX_XLSX_PART_BYTES = 1 << 30           # no part of an XLSX may expand beyond 1 GiB ...
MAX_XLSX_RATIO = 200                    # ... or expand more than 200 times over 16 MiB;
MAX_XLSX_STRINGS_BYTES = 1 << 26        # openpyxl holds the shared strings in memory (up to ~7× their size) ...
MAX_XLSX_XML_BYTES = 1 << 24            # ... and parses other XML parts whole (up to ~40×); worksheets it streams
MAX_COLUMNS = 4096
PARQUET_ROW_GROUP = 1 << 16   # rows per Parquet row group written
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_RISKY = set(FORMULA_START) | {"'"}  # first characters of a cell that may need the prefix
_NON_ASCII = re.compile(b"[\x80-\xff]")
# Columns that only our outputs carry together: a labelled table or conversations file
# (batch.LABEL_COLUMNS, batch.CONVERSATION_OUTPUT_COLUMNS) and a review sheet (sampling.SHEET_COLUMNS).
OWN_OUTPUT_COLUMNS = ({"label_name", "confidence", "is_dispute", "needs_review"},
                      {"model_label", "model_label_name", "model_confidence"})


class TableError(Exception):
    """A table that cannot be read or written, with the reason."""


@dataclass
class Row:
    """One input row: its 1-based line (or sheet row), its values aligned to the header, any error."""

    line: int
    values: list[str]
    error: str | None = None
    damaged: bool = False  # some of its text was replaced with U+FFFD


@dataclass
class Chunk:
    """Consecutive input rows as a DataFrame of strings, with each row's line, error and damage flag."""

    frame: "object"
    lines: list[int]
    errors: list[str | None]
    damaged: list[bool]


@dataclass
class TableReader:
    """An open input table: its header, format, encoding and a row iterator."""

    path: str
    format: str
    columns: list[str]
    encoding: str | None
    rows: Iterator[Row]
    sheet_name: str | None = None
    notes: list[str] = field(default_factory=list)
    types: dict = field(default_factory=dict)  # column → Arrow type, for columns a Parquet input types

    def chunks(self, size: int = 4000) -> Iterator[Chunk]:
        """The rows in chunks of ``size``."""
        import pandas as pd

        block: list[Row] = []
        for row in self.rows:
            block.append(row)
            if len(block) == size:
                yield _chunk(block, self.columns, pd)
                block = []
        if block:
            yield _chunk(block, self.columns, pd)


def _chunk(rows: list[Row], columns: list[str], pd) -> Chunk:
    frame = pd.DataFrame([row.values for row in rows], columns=columns, dtype=object)
    return Chunk(frame, [row.line for row in rows], [row.error for row in rows], [row.damaged for row in rows])


def table_format(path: str | os.PathLike, override: str | None = None, flag: str = "--format") -> str:
    """The format of ``path`` from ``override`` or its extension (``flag`` is named in the error)."""
    if override:
        if override not in set(FORMATS.values()):
            raise TableError(f"unknown format {override!r}; expected one of: csv, tsv, xlsx, jsonl, parquet")
        return override
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        hint = "; an old Excel .xls file: save it as .xlsx first" if suffix in (".xls", ".et") else ""
        raise TableError(f"cannot tell the format of {str(path)!r} from its extension; "
                         f"use .csv, .tsv, .xlsx, .jsonl or .parquet, or pass {flag}{hint}")
    return FORMATS[suffix]


def detect_encoding(path: str | os.PathLike) -> str:
    """UTF-8 (with or without BOM) or GB18030, judged on 64 KiB from the first non-ASCII byte
    (an export may start with thousands of ASCII-only rows); a file whose first 32 MiB are
    ASCII is taken as UTF-8."""
    with open(path, "rb") as fh:
        sample = fh.read(SAMPLE_BYTES)
        if sample.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        scanned = len(sample)
        while not (found := _NON_ASCII.search(sample)) and len(sample) == SAMPLE_BYTES \
                and scanned < MAX_ASCII_PREFIX:
            sample = fh.read(SAMPLE_BYTES)
            scanned += len(sample)
        if not found:
            return "utf-8"
        sample = sample[found.start():]  # ASCII before it: a character boundary in both encodings
        sample += fh.read(SAMPLE_BYTES - len(sample))
    final = len(sample) < SAMPLE_BYTES
    for encoding in ENCODINGS:
        try:
            codecs.getincrementaldecoder(encoding)().decode(sample, final=final)
            return encoding
        except UnicodeDecodeError:
            if encoding == "utf-8" and _mostly_utf8(sample, final):
                return encoding  # a few stray bytes in UTF-8 text: read with U+FFFD, not as another encoding
            continue
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    if best is None:
        raise TableError(f"cannot decode {path}: tried {', '.join(ENCODINGS)} and automatic detection; "
                         "pass --encoding")
    return best.encoding


def _mostly_utf8(sample: bytes, final: bool) -> bool:
    """Whether ``sample`` is UTF-8 text with a few invalid bytes (valid multi-byte characters
    outnumber the invalid bytes two to one); GB18030 or Latin-1 text is far from that."""
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(sample, final=final)
    bad = text.count("\ufffd")
    wide = sum(1 for ch in text if ord(ch) > 127) - bad
    return wide > 2 * bad


def open_table(path, *, fmt: str | None = None, encoding: str | None = None, sheet: str | None = None,
               header_row: int | None = None) -> TableReader:
    """Open ``path`` for streaming; errors name the file and what was wrong.

    ``header_row`` (1-based) says which row holds the column names; by default it is the first
    of the first ten rows that names a known column (a title row above the header is skipped).
    """
    path = str(path)
    if os.path.isdir(path):
        raise TableError(f"input is a folder, not a file: {path}")
    if not os.path.exists(path):
        raise TableError(f"input file not found: {path}")
    if header_row is not None and header_row < 1:
        raise TableError(f"--header-row counts from 1, got {header_row}")
    fmt = table_format(path, fmt, "--input-format")
    if fmt == "xlsx":
        return _open_xlsx(path, sheet, header_row)
    if fmt == "parquet":
        return _open_parquet(path)
    encoding = encoding or detect_encoding(path)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise TableError(f"unknown encoding {encoding!r}") from None
    if fmt == "jsonl":
        return _open_jsonl(path, encoding)
    return _open_delimited(path, encoding, "\t" if fmt == "tsv" else ",", fmt, header_row)


# -- text files ------------------------------------------------------------------------------------
class _CutLine(str):
    """A physical line whose rest, beyond ``MAX_LINE_CHARS``, was dropped."""


def _text_lines(path: str, encoding: str) -> Iterator[str]:
    """Physical lines, each at most ``MAX_LINE_CHARS`` characters (a longer one comes back cut, as a
    ``_CutLine``); undecodable bytes come back as lone surrogates."""
    with open(path, encoding=encoding, errors="surrogateescape", newline="") as fh:
        while True:
            line = fh.readline(MAX_LINE_CHARS)
            if not line:
                return
            if len(line) == MAX_LINE_CHARS and not line.endswith("\n"):
                while (rest := fh.readline(MAX_LINE_CHARS)) and not rest.endswith("\n"):
                    pass
                line = _CutLine(line + "\n")
            yield line


def _repair_cells(values: list[str]) -> tuple[list[str], bool]:
    """``values`` with lone surrogates as U+FFFD, and whether there were any."""
    if any(map(SURROGATES.search, values)):
        return [_repair(v)[0] for v in values], True
    return values, False


def _scan(line: str, delimiter: str, quoted: bool) -> str:
    """How ``line`` leaves a CSV record that was (``quoted``) or was not inside a quoted field:
    ``"open"`` (still inside one), ``"closed"``, or ``"bad"`` (text after a closing quote).

    A quote opens a field only at the start of the field; elsewhere it is text.
    """
    bad = False
    i = 0
    while True:
        if quoted:
            j = line.find('"', i)
            if j < 0:
                return "open"
            if line.startswith('"', j + 1):  # an escaped quote
                i = j + 2
                continue
            quoted = False
            k = line.find(delimiter, j + 1)
            bad = bad or bool(line[j + 1 : k if k >= 0 else len(line)].strip(" \t\r\n"))
            if k < 0:
                return "bad" if bad else "closed"
            i = k + 1
        elif line.startswith('"', i):
            quoted = True
            i += 1
        else:
            k = line.find(delimiter, i)
            if k < 0:
                return "bad" if bad else "closed"
            i = k + 1


def _records(lines: Iterator[str], delimiter: str = ",") -> Iterator[tuple[int, list[str], bool]]:
    """Group physical lines into CSV records: (first line number, lines, quotes balanced).

    A quoted field that never closes, closes with text after its quote across lines, or runs past
    ``MAX_RECORD_CHARS`` is unbalanced: its first line comes back alone and the rest is read again.
    """
    source = enumerate(lines, 1)
    replay: deque = deque()
    pending: list[tuple[int, str]] = []
    size, quoted = 0, False
    while True:
        item = replay.popleft() if replay else next(source, None)
        if item is None:
            if not pending:
                return
            state = "eof"
        else:
            pending.append(item)
            size += len(item[1])
            state = _scan(item[1], delimiter, quoted) if quoted or '"' in item[1] else "closed"
            if state == "bad" and len(pending) == 1:
                state = "closed"  # one line: the csv module reads it leniently
            if state == "open" and size < MAX_RECORD_CHARS:
                quoted = True
                continue
        if state == "closed":
            yield pending[0][0], [line for _, line in pending], True
        else:
            yield pending[0][0], [pending[0][1]], False
            replay.extendleft(reversed(pending[1:]))
        pending, size, quoted = [], 0, False


def _parse(lines: list[str], delimiter: str) -> list[str]:
    return next(csv.reader(lines, delimiter=delimiter), [])


def _is_header(values: list[str]) -> bool:
    """Whether a row can be a header below title rows: two or more names, one of them a known column."""
    known = {name.lower() for name in TEXT_COLUMNS + ROLE_COLUMNS + CONVERSATION_COLUMNS}
    names = [str(v).strip().lower() for v in values if str(v).strip()]
    return len(names) >= 2 and any(name in known for name in names)


def _is_title(values: list[str]) -> bool:
    """Whether a row above the header looks like a title (at most one filled cell)."""
    return sum(1 for v in values if str(v).strip()) <= 1


def _header_at(rows: list[list[str]]) -> int:
    """Which of the first rows is the header: the first one, unless it and the rows after it are
    titles (one cell at most) up to a row that ``_is_header``."""
    for k, values in enumerate(rows):
        if _is_header(values):
            return k
        if not _is_title(values):
            return 0
    return 0


def _open_delimited(path: str, encoding: str, delimiter: str, fmt: str, header_row: int | None) -> TableReader:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a message may be longer than the default 128 KiB
    records = _records(_text_lines(path, encoding), delimiter)
    head: list[tuple[int, list[str], bool]] = []
    for record in records:
        if header_row is not None and record[0] < header_row:
            continue
        head.append(record)
        values = _parse(record[1], delimiter)
        if header_row is not None or len(head) == HEADER_SEARCH_ROWS or not _is_title(values):
            break
    if not head:
        raise TableError(f"input file is empty: {path}" if header_row is None else
                         f"input file has fewer than {header_row} rows: {path}")
    at = 0 if header_row is not None else _header_at([_parse(record[1], delimiter) for record in head])
    header = [_repair(name.strip())[0] for name in _parse(head[at][1], delimiter)]
    ours = is_own_output(header)
    if ours:
        header = [_undo_prefix(name) for name in header]
    if not any(header):
        raise TableError(f"input file has no header row: {path}")
    if any("\x00" in name for name in header):
        raise TableError(f"{path} is not a text table: its header line holds NUL bytes")
    header = _unique_names(header)
    skipped = head[at][0] - 1
    notes = [f"header found on line {head[at][0]}; {skipped} line(s) above it skipped"] if skipped else []
    records = _chain(head[at + 1 :], records)

    def rows() -> Iterator[Row]:
        width = len(header)
        for line, lines, balanced in records:
            text = lines[0] if len(lines) == 1 else "".join(lines)
            if not text.strip("\r\n"):
                continue
            error = "line too long" if any(isinstance(part, _CutLine) for part in lines) else None
            damaged = bool(SURROGATES.search(text))
            if damaged:
                lines = [_repair(part)[0] for part in lines]
                text = "".join(lines)
            if not balanced:
                yield Row(line, _fit(text.rstrip("\r\n").split(delimiter), width, delimiter), error or "unbalanced quote",
                          damaged)
                continue
            try:
                values = _parse(lines, delimiter)
                if ours and "'" in text:
                    values = [_undo_prefix(v) for v in values]
            except csv.Error as exc:
                yield Row(line, _fit(text.rstrip("\r\n").split(delimiter), width, delimiter), f"bad CSV: {exc}", damaged)
                continue
            if error is None and len(values) != width:
                error = f"expected {width} fields, got {len(values)}"
            yield Row(line, _fit(values, width, delimiter), error, damaged)

    return TableReader(path, fmt, header, encoding, rows(), notes=notes)


def _chain(first: list, rest: Iterator) -> Iterator:
    yield from first
    yield from rest


def is_own_output(header: list[str]) -> bool:
    """Whether a table with this header was written by this tool (``OWN_OUTPUT_COLUMNS``): only
    then is a ``'`` before a formula character our prefix, to be dropped on reading."""
    names = set(header)
    return any(columns <= names for columns in OWN_OUTPUT_COLUMNS)


def _undo_prefix(value: str) -> str:
    """A cell our writer neutralised back to what the input held: ``'`` dropped before what
    ``neutralise`` prefixes (``'=…``, ``'+…``, ``'-…``, ``'@…``, tab, CR, or ``'`` before those)."""
    return value[1:] if value[:1] == "'" and _looks_like_formula(value[1:]) else value


def _looks_like_formula(value: str) -> bool:
    """Whether a spreadsheet could run ``value`` (or ``value`` is ``'`` before such a value)."""
    return value.startswith(FORMULA_START) or (value[:1] == "'" and value.lstrip("'").startswith(FORMULA_START))


def _fit(values: list[str], width: int, delimiter: str) -> list[str]:
    """Pad short rows; fold the surplus of long rows into the last column, so nothing is lost."""
    if len(values) <= width:
        return values + [""] * (width - len(values))
    return values[: width - 1] + [delimiter.join(values[width - 1 :])]


def _unique_names(names: list[str]) -> list[str]:
    """Header names made unique (``内容``, ``内容.1``) and blank ones named by position."""
    if len(names) > MAX_COLUMNS:
        raise TableError(f"the header has {len(names)} columns; at most {MAX_COLUMNS} are supported")
    taken = {name for name in names if name}
    out: list[str] = []
    for i, name in enumerate(names):
        base = candidate = name or f"column_{i + 1}"
        number = 0
        while candidate in out or (candidate != name and candidate in taken):  # never reuse an existing name
            number += 1
            candidate = f"{base}.{number}"
        out.append(candidate)
    return out


def _json_object(line: str) -> dict:
    """The object on a JSON line, its keys free of lone surrogates (an escape such as ``"\\ud83d"``)."""
    try:
        obj = json.loads(line)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    if any(map(SURROGATES.search, obj)):
        obj = {_repair(key)[0]: value for key, value in obj.items()}
    return obj


def _open_jsonl(path: str, encoding: str) -> TableReader:
    # The header is the union of the objects' keys, in order of appearance, read in a first pass.
    columns: dict[str, None] = {}
    for line in _text_lines(path, encoding):
        try:
            columns.update(dict.fromkeys(_json_object(_repair(line)[0])))
        except ValueError:
            continue
        if len(columns) > MAX_COLUMNS:
            raise TableError(f"{path}: the objects have more than {MAX_COLUMNS} distinct keys")
    if not columns:
        raise TableError(f"no JSON objects found in {path}")
    header = list(columns)

    def rows() -> Iterator[Row]:
        for number, raw in enumerate(_text_lines(path, encoding), 1):
            line, damaged = _repair(raw)
            if not line.strip():
                continue
            try:
                obj = _json_object(line)
            except ValueError as exc:
                yield Row(number, [line.rstrip("\n")] + [""] * (len(header) - 1), f"invalid JSON: {exc}", damaged)
                continue
            values, escaped = _repair_cells([_cell(obj.get(name)) for name in header])
            yield Row(number, values, None, damaged or escaped)

    return TableReader(path, "jsonl", header, encoding, rows())


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value != value:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


# -- XLSX and Parquet ------------------------------------------------------------------------------
def _check_xlsx_size(path: str) -> None:
    """Refuse an XLSX whose parts would expand beyond the limits (a zip bomb, or a part that
    openpyxl reads into memory whole and that would not fit)."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            for info in infos:
                ratio = info.file_size / max(info.compress_size, 1)
                if info.file_size > MAX_XLSX_PART_BYTES or (info.file_size > 1 << 24 and ratio > MAX_XLSX_RATIO):
                    raise TableError(f"{path}: part {info.filename} would expand to {info.file_size:,} bytes "
                                     f"({ratio:.0f}× its compressed size); refusing to read it")
            strings = _shared_strings_parts(archive)
            for info in infos:
                limit = (MAX_XLSX_STRINGS_BYTES if info.filename in strings else
                         MAX_XLSX_XML_BYTES if info.filename.endswith((".xml", ".rels"))
                         and not info.filename.startswith("xl/worksheets/") else MAX_XLSX_PART_BYTES)
                if info.file_size > limit:
                    raise TableError(f"{path}: part {info.filename} would expand to {info.file_size:,} bytes, more "
                                     f"than the {limit >> 20} MiB that can be read into memory; save the sheet as CSV")
    except zipfile.BadZipFile as exc:
        raise TableError(f"cannot read {path} as XLSX: {exc}") from None


def _shared_strings_parts(archive: zipfile.ZipFile) -> set[str]:
    """The shared strings part(s), found as openpyxl finds them: by content type, else by the usual name."""
    from defusedxml.ElementTree import fromstring

    try:
        types = fromstring(archive.read("[Content_Types].xml"))  # its size was checked with the other XML parts
    except Exception:  # missing or broken: openpyxl will say so
        return {"xl/sharedStrings.xml"}
    named = {node.get("PartName", "").lstrip("/") for node in types.iter()
             if node.get("ContentType", "").endswith(".sharedStrings+xml")}
    return named or {"xl/sharedStrings.xml"}


def _open_xlsx(path: str, sheet: str | None, header_row: int | None) -> TableReader:
    import defusedxml  # noqa: F401  (openpyxl parses with it when it is installed: no entity expansion)
    from openpyxl import load_workbook

    _check_xlsx_size(path)
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a broken or hostile file
        raise TableError(f"cannot read {path} as XLSX: {_reason(exc)}") from None
    if sheet is not None and sheet not in workbook.sheetnames:
        raise TableError(f"no sheet {sheet!r} in {path}; sheets: {', '.join(workbook.sheetnames)}")
    worksheet = workbook[sheet] if sheet else workbook.worksheets[0]
    formulas = _formula_rows(path, worksheet) if _has_formulas(path, worksheet) else None
    values_of = worksheet.iter_rows(values_only=True)
    shown = [0]  # formula cells with no saved value, read as their formula text
    if formulas is not None:
        values_of = (_with_formulas(values, texts, shown) for values, texts in zip(values_of, formulas))
    cells = enumerate(values_of, 1)
    seen: list[tuple[int, list[str]]] = []
    try:
        for number, values in cells:
            values = _trim([_cell(v).strip() for v in values])
            if header_row is not None:
                if number == header_row:
                    seen = [(number, values)]
                    break
                continue
            if any(values):
                seen.append((number, values))
                if not _is_title(values) or len(seen) == HEADER_SEARCH_ROWS:
                    break
    except Exception as exc:
        raise TableError(f"cannot read sheet {worksheet.title!r} of {path}: {_reason(exc)}") from None
    if not seen:
        raise TableError(f"sheet {worksheet.title!r} of {path} is empty" if header_row is None
                         else f"sheet {worksheet.title!r} of {path} has no row {header_row}")
    at = 0 if header_row is not None else _header_at([v for _, v in seen])
    header_line, header = seen[at]
    header = _unique_names(_trim(_repair_cells(header)[0]))
    later = seen[at + 1 :]
    notes = [f"header found on row {header_line}; {at} row(s) above it skipped"] if at else []

    def rows() -> Iterator[Row]:
        width = len(header)
        try:
            for number, values in _chain(later, ((n, _trim([_cell(v) for v in vals])) for n, vals in cells)):
                if not any(values):
                    continue
                values, damaged = _repair_cells(values)
                error = f"expected {width} fields, got {len(values)}" if len(values) > width else None
                yield Row(number, _fit(values, width, " "), error, damaged)
        except Exception as exc:
            raise TableError(f"cannot read sheet {worksheet.title!r} of {path}: {_reason(exc)}") from None
        finally:
            workbook.close()
        if shown[0]:
            notes.append(f"{shown[0]} cell(s) held a formula with no saved value (a message typed as =…): "
                         "their text was read as written")

    return TableReader(path, "xlsx", header, None, rows(), sheet_name=worksheet.title, notes=notes)


def _has_formulas(path: str, worksheet) -> bool:
    """Whether the sheet's XML holds any formula (``<f>``), read as a stream."""
    with zipfile.ZipFile(path) as archive, archive.open(worksheet._worksheet_path) as fh:
        tail = b""
        while chunk := fh.read(1 << 20):
            if b"<f>" in tail + chunk or b"<f " in tail + chunk:
                return True
            tail = chunk[-3:]
    return False


def _formula_rows(path: str, worksheet):
    """The sheet's rows with formulas as their text (``=…``), in step with its rows of values."""
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True, data_only=False)
    try:
        yield from book[worksheet.title].iter_rows(values_only=True)
    finally:
        book.close()


def _with_formulas(values: tuple, texts: tuple, shown: list) -> tuple:
    """A row's values, a formula's text standing in for a formula cell that has no saved value
    (pandas and other writers save a message that starts with ``=`` as a formula)."""
    if all(v is not None for v in values):
        return values
    out = list(values)
    for k, (value, text) in enumerate(zip(values, texts)):
        if value is None and isinstance(text, str) and text.startswith("="):
            out[k] = text
            shown[0] += 1
    return tuple(out)


def _reason(exc: Exception) -> str:
    """Why openpyxl could not read a file, in one line; refused XML entities are named as such."""
    from defusedxml import DefusedXmlException

    cause = exc
    while cause is not None:
        if isinstance(cause, DefusedXmlException):
            return "it declares XML entities, which are refused (they can expand without bound)"
        cause = cause.__cause__ or cause.__context__
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _trim(values: list[str]) -> list[str]:
    """A header row without the empty cells after its last name."""
    while values and not values[-1]:
        values = values[:-1]
    return values


def _open_parquet(path: str) -> TableReader:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise TableError("reading Parquet needs pyarrow: pip install \"complaint-classifier[parquet]\"") from None
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:
        raise TableError(f"cannot read {path} as Parquet: {exc}") from None
    schema = parquet.schema_arrow
    header = _unique_names([str(name) for name in schema.names])
    types = {name: field.type for name, field in zip(header, schema) if _restorable(field.type)}

    def rows() -> Iterator[Row]:
        number = 0
        for batch in parquet.iter_batches(batch_size=4096):
            decoded = [_values(column, path) for column in batch.columns]
            lenient = any(bad for _, bad in decoded)
            for record in zip(*(values for values, _ in decoded)):
                number += 1
                values = [_cell(v) for v in record]
                values, damaged = _repair_cells(values) if lenient else (values, False)
                yield Row(number, values, damaged=damaged)

    return TableReader(path, "parquet", header, None, rows(), types=types)


def _values(column, path: str) -> tuple[list, bool]:
    """A Parquet column's values, and whether some of its strings are not valid UTF-8 (a tool
    that does not check them wrote the file): their bad bytes come back as lone surrogates."""
    import pyarrow as pa

    try:
        return column.to_pylist(), False
    except UnicodeDecodeError:
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            raise TableError(f"{path}: a {column.type} column holds text that is not valid UTF-8") from None
    raw = column.cast(pa.large_binary() if pa.types.is_large_string(column.type) else pa.binary())
    return [None if v is None else v.decode("utf-8", "surrogateescape") for v in raw.to_pylist()], True


def _restorable(arrow_type) -> bool:
    """Whether a column of this type can be written back exactly from the strings ``_cell`` makes."""
    import pyarrow as pa

    t = pa.types
    return (t.is_integer(arrow_type) or t.is_floating(arrow_type) or t.is_boolean(arrow_type)
            or t.is_decimal(arrow_type) or t.is_date(arrow_type) or t.is_timestamp(arrow_type))


# -- columns ---------------------------------------------------------------------------------------
def detect_column(columns, candidates: list[str], what: str, required: bool = True) -> str | None:
    """The first column whose name matches a candidate (exactly, else case-insensitively: of ``text``
    and ``Text``, ``text`` wins), else an error or None."""
    exact = {str(c).strip(): c for c in reversed(list(columns))}
    lowered = {str(c).strip().lower(): c for c in reversed(list(columns))}
    for name in candidates:
        if name in exact:
            return exact[name]
        if name.lower() in lowered:
            return lowered[name.lower()]
    if required:
        raise TableError(f"no {what} column found; columns are: {_names(columns)}. "
                         f"Name it with --{what}-column")
    return None


def check_column(columns, name: str, what: str) -> str:
    """``name`` if it is a column, else an error listing the columns."""
    if name not in columns:
        raise TableError(f"{what} column {name!r} not found; columns are: {_names(columns)}")
    return name


def _names(columns, most: int = 30, longest: int = 40) -> str:
    """Column names for an error message: at most ``most``, each cut to ``longest`` characters,
    control characters escaped, so a hostile header cannot flood the terminal."""
    names = [str(c) for c in columns]
    shown = [repr(n)[1:-1] if not n.isprintable() else n for n in names[:most]]
    shown = [n if len(n) <= longest else n[: longest - 1] + "…" for n in shown]
    more = f" … and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(shown) + more


def looks_like_seller(values):
    """Which sender values (a pandas Series of lower-case strings) name the shop side: a seller role
    (客服, 商家 …) or a shop nickname (… 旗舰店, 官方 …, 店名:客服名)."""
    return values.isin(SELLER_VALUES) | values.str.contains(_SELLER_NICKNAME)


def read_table(path, **kwargs):
    """A whole (small) table as a pandas DataFrame of strings; for notebooks, reviewed sheets, ``evaluate``."""
    import pandas as pd

    reader = open_table(path, **kwargs)
    frame = pd.DataFrame([row.values for row in reader.rows], columns=reader.columns, dtype=object)
    return frame.fillna("")


# -- writing ---------------------------------------------------------------------------------------
def file_mode() -> int:
    """The permissions a new file gets from the process's umask (temporary files start as 0600).

    Read from ``/proc/self/status`` where there is one (Linux); elsewhere the umask is set and put
    back, which is the only portable way to read it.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            mask = next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def _plain(value) -> str:
    """A cell as CSV text: booleans as true/false, missing values empty, numbers as they print."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _csv_cells(column, neutralised: bool) -> list[str]:
    """A DataFrame column as CSV text, as ``_plain`` and ``neutralise`` would make each cell."""
    values = column.tolist()
    kinds = {type(v) for v in values} - {type(None)}
    if kinds <= {str}:
        text = ["" if v is None else v for v in values]
    elif kinds <= {bool}:
        text = ["" if v is None else "true" if v else "false" for v in values]
    else:
        text = [_plain(v) for v in values]
    if neutralised and any(v[:1] in _RISKY for v in text):
        text = [neutralise(v) for v in text]
    return text


def neutralise(value: str) -> str:
    """A cell that a spreadsheet would run as a formula, made text (OWASP: a leading ``'``).

    A cell that already starts with ``'`` and a formula character gets one more, so that reading
    it back (which drops one) gives the original."""
    return "'" + value if _looks_like_formula(value) else value


class TableWriter:
    """Write rows to CSV (UTF-8 with BOM), TSV, XLSX, JSONL or Parquet through a temporary file.

    The file appears under its name only when ``close()`` succeeds, with the permissions the
    umask gives; ``abort()`` (or an exception inside ``with``) leaves nothing behind. ``path``
    ``-`` writes CSV, TSV or JSONL to stdout. Errors name ``path``, never the temporary file.
    ``types`` gives Parquet columns their Arrow type (a ``pyarrow.DataType`` or an alias such as
    ``"float64"``; strings are cast, empty ones become nulls); other columns take the type of
    their first values (text when those are all empty).
    """

    def __init__(self, path, columns: list[str], fmt: str | None = None, *, raw_cells: bool = False,
                 sheet_name: str | None = None, types: dict | None = None) -> None:
        self.path = str(path)
        self.columns = list(columns)
        self.raw_cells = raw_cells
        self.sheet_name = sheet_name or "labels"
        self.types = dict(types or {})
        self.format = "csv" if self.path == "-" and not fmt else table_format(self.path, fmt)
        self._tmp = None
        if self.path == "-":
            if self.format in ("xlsx", "parquet"):
                raise TableError(f"{self.format} cannot be written to stdout: give an output file name")
            self._fh = sys.stdout
        else:
            check_writable(self.path)
            folder = os.path.dirname(os.path.abspath(self.path))
            try:
                fd, self._tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(self.path)}.", suffix=".part")
            except OSError as exc:
                raise TableError(f"cannot write {self.path}: {exc.strerror}") from None
            binary = self.format in ("xlsx", "parquet")
            self._fh = os.fdopen(fd, "wb" if binary else "w", **({} if binary else {
                "encoding": "utf-8-sig" if self.format == "csv" else "utf-8", "newline": ""}))
        self._guard(self._start)

    def _guard(self, action, *args):
        try:
            return action(*args)
        except OSError as exc:
            self.abort()
            if isinstance(exc, BrokenPipeError) and self.path == "-":
                raise  # the reader of stdout has gone (``| head``): the caller ends the run quietly
            reason = "no space left on the device" if exc.errno == 28 else exc.strerror or str(exc)
            raise TableError(f"cannot write {self.path}: {reason}") from None

    def _start(self) -> None:
        if self.format in ("csv", "tsv"):
            self._csv = csv.writer(self._fh, delimiter="\t" if self.format == "tsv" else ",")
            self._csv.writerow(self.columns if self.raw_cells else map(neutralise, self.columns))
        elif self.format == "xlsx":
            from openpyxl import Workbook

            self._book = Workbook(write_only=True)
            self._sheet = self._book.create_sheet(_sheet_title(self.sheet_name))
            self._sheet.freeze_panes = "A2"
            self._widths = [min(60, max(8, _width(c))) for c in self.columns]
            self._rows = 0
            self._header = self.columns
        elif self.format == "parquet":
            try:
                import pyarrow.parquet  # noqa: F401
            except ImportError:
                raise TableError("writing Parquet needs pyarrow: pip install \"complaint-classifier[parquet]\"") from None
            self._batches: list = []
            self._buffered = 0
            self._parquet = None

    def write(self, values: list) -> None:
        """Write one row, values in the order of ``columns``."""
        self._guard(self._write_rows, [values])

    def write_frame(self, frame) -> None:
        """Write the rows of a DataFrame whose columns are ``columns``."""
        if self.format == "parquet":
            self._guard(self._buffer, frame)
        elif self.format in ("csv", "tsv"):  # column by column: a chunk's cells become text in a few passes
            cells = [_csv_cells(frame.iloc[:, k], not self.raw_cells) for k in range(frame.shape[1])]
            self._guard(self._csv.writerows, zip(*cells))
        else:
            self._guard(self._write_rows, frame.itertuples(index=False, name=None))

    def _write_rows(self, rows) -> None:
        if self.format in ("csv", "tsv"):
            if self.raw_cells:
                self._csv.writerows([_plain(v) for v in row] for row in rows)
            else:
                self._csv.writerows([neutralise(_plain(v)) for v in row] for row in rows)
        elif self.format == "xlsx":
            self._write_xlsx(rows)
        elif self.format == "parquet":
            import pandas as pd

            self._buffer(pd.DataFrame(list(rows), columns=self.columns, dtype=object))
        else:
            self._fh.write("".join(json.dumps(dict(zip(self.columns, map(_json_value, row))), ensure_ascii=False)
                                   + "\n" for row in rows))

    def _write_xlsx(self, rows) -> None:
        from openpyxl.cell import WriteOnlyCell

        if self._rows == 0:
            self._sheet.append([_string_cell(WriteOnlyCell(self._sheet, value=_xlsx_text(c))) for c in self.columns])
        for row in rows:
            cells = []
            for k, value in enumerate(row):
                value = None if value is None or (isinstance(value, float) and math.isnan(value)) else value
                cell = WriteOnlyCell(self._sheet, value=_xlsx_text(value) if isinstance(value, str) else value)
                if isinstance(value, str):
                    cell.data_type = "s"  # a string is a string, never a formula
                    if self._rows < 200:
                        self._widths[k] = min(60, max(self._widths[k], _width(value)))
                cells.append(cell)
            self._sheet.append(cells)
            self._rows += 1

    def close(self) -> None:
        """Finish the file and move it into place."""
        self._guard(self._finish)

    def _finish(self) -> None:
        if self.format == "xlsx":
            from openpyxl.utils import get_column_letter

            if self._rows == 0:
                self._write_xlsx([])
            for k, width in enumerate(self._widths, 1):
                self._sheet.column_dimensions[get_column_letter(k)].width = width
            self._sheet.auto_filter.ref = f"A1:{get_column_letter(max(1, len(self.columns)))}{self._rows + 1}"
            self._book.save(self._fh)
        elif self.format == "parquet":
            self._flush_parquet()
            if self._parquet is None:
                self._open_parquet_file([[] for _ in self.columns])
            self._parquet.close()
        if self._tmp is None:
            self._fh.flush()
            return
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.chmod(self._tmp, file_mode())
        os.replace(self._tmp, self.path)
        self._tmp = None

    def _buffer(self, frame) -> None:
        """Keep a frame for the next row group; write the row group once it is full."""
        self._batches.append(frame)
        self._buffered += len(frame)
        if self._buffered >= PARQUET_ROW_GROUP:
            self._flush_parquet()

    def _flush_parquet(self) -> None:
        import pandas as pd
        import pyarrow as pa

        if not self._batches:
            return
        frame = pd.concat(self._batches, ignore_index=True) if len(self._batches) > 1 else self._batches[0]
        self._batches, self._buffered = [], 0
        columns = [frame.iloc[:, k].tolist() for k in range(len(self.columns))]
        try:
            if self._parquet is None:
                self._open_parquet_file(columns)
            arrays = [_arrow_column(values, field.type) for values, field in zip(columns, self._schema)]
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            self.abort()
            raise TableError(f"cannot write {self.path} as Parquet: {exc}") from None
        self._parquet.write_table(pa.Table.from_arrays(arrays, schema=self._schema))

    def _open_parquet_file(self, first_values: list[list]) -> None:
        """Fix the file's schema: the given ``types``, else the type of a column's first values."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        fields = []
        for name, values in zip(self.columns, first_values):
            given = self.types.get(name)
            if isinstance(given, str):
                given = pa.type_for_alias(given)
            if given is None:
                given = _arrow_column(values).type
                given = pa.string() if pa.types.is_null(given) else given
            fields.append(pa.field(name, given))
        self._schema = pa.schema(fields)
        self._parquet = pq.ParquetWriter(self._fh, self._schema)

    def abort(self) -> None:
        """Drop the temporary file."""
        if self.format == "xlsx":
            try:
                self._sheet.close()  # end openpyxl's sheet stream now, not with an error at garbage collection
            except Exception:  # the stream may be what failed (a full disk); nothing is kept either way
                pass
        if self._tmp is not None:
            try:
                self._fh.close()
            except OSError:
                pass
            Path(self._tmp).unlink(missing_ok=True)
            self._tmp = None

    def __enter__(self) -> "TableWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
            return
        try:
            self.close()
        except BaseException:  # an interrupt or a full disk while saving: no temporary file is left behind
            self.abort()
            raise


def check_writable(path: str) -> None:
    """Raise ``TableError`` unless a file can be created at ``path`` (folder exists and is writable)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise TableError(f"output folder does not exist: {folder}")
    if os.path.isdir(path):
        raise TableError(f"output is a folder, not a file: {path}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise TableError(f"cannot write {path}: the folder {folder} is not writable")


def _arrow_column(values: list, arrow_type=None):
    """An Arrow array of ``arrow_type`` from a column's values; strings are parsed, "" is null."""
    import pyarrow as pa

    array = pa.array(values, from_pandas=True)
    if arrow_type is None or array.type == arrow_type:
        return array
    text = (pa.types.is_string, pa.types.is_large_string)
    if any(is_text(array.type) for is_text in text) and not any(is_text(arrow_type) for is_text in text):
        array = pa.array([v if v != "" else None for v in values], pa.string())
        if pa.types.is_timestamp(arrow_type):  # the text has microseconds (nanoseconds) whatever the unit
            array = array.cast(pa.timestamp("ns" if arrow_type.unit == "ns" else "us", arrow_type.tz))
    return array.cast(arrow_type)


def _json_value(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # NumPy scalars
        return value.item()
    return value


def _string_cell(cell):
    """``cell`` as a string cell: openpyxl would otherwise store a string that starts with ``=`` as a formula."""
    cell.data_type = "s"
    return cell


def _xlsx_text(value):
    """Strip characters XLSX cannot hold (control characters)."""
    if isinstance(value, str):
        return "".join(ch for ch in value if ch in "\t\n\r" or ord(ch) >= 32)
    return value


def _sheet_title(name: str) -> str:
    return re.sub(r"[\[\]:*?/\\]", "_", name)[:31] or "labels"


def _width(value: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in str(value)[:60]) + 2
