"""Read and write tables of messages: CSV, TSV, XLSX and JSONL, streamed row by row.

Reading never drops a row. A CSV line with a broken quote or the wrong number of
fields comes back as a ``Row`` with an ``error`` and as much of its content as could
be recovered; the caller decides what to do with it.
"""
from __future__ import annotations

import codecs
import csv
import json
import os
import sys
import tempfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

TEXT_COLUMNS = ["text", "message", "content", "msg", "body", "内容", "聊天内容", "消息内容", "消息",
                "买家留言", "留言", "文本", "评论", "评价内容", "评价", "review", "comment"]
ROLE_COLUMNS = ["role", "sender", "sender_type", "speaker", "from", "发送方", "发送者", "角色", "身份", "说话人"]
CONVERSATION_COLUMNS = ["conversation_id", "session_id", "conversation", "session", "chat_id", "dialog_id",
                        "会话ID", "会话id", "会话编号", "会话", "订单号", "order_id"]
TIME_COLUMNS = ["time", "timestamp", "datetime", "created_at", "date", "时间", "发送时间", "消息时间", "日期"]
BUYER_VALUES = ["买家", "buyer", "customer", "客户", "顾客", "用户", "user", "消费者"]

FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".xlsx": "xlsx", ".jsonl": "jsonl", ".ndjson": "jsonl"}
ENCODINGS = ["utf-8", "gb18030"]
MAX_RECORD_CHARS = 1 << 22  # a quoted field longer than this is taken as an unbalanced quote
SAMPLE_BYTES = 1 << 16


class TableError(Exception):
    """A table that cannot be read or written, with the reason."""


@dataclass
class Row:
    """One input row: its 1-based line (or sheet row), its values aligned to the header, any error."""

    line: int
    values: list[str]
    error: str | None = None


@dataclass
class TableReader:
    """An open input table: its header, format, encoding and a row iterator."""

    path: str
    format: str
    columns: list[str]
    encoding: str | None
    rows: Iterator[Row]
    notes: list[str] = field(default_factory=list)


def table_format(path: str | os.PathLike, override: str | None = None) -> str:
    """The format of ``path`` from ``override`` or its extension."""
    if override:
        if override not in set(FORMATS.values()):
            raise TableError(f"unknown format {override!r}; expected one of: csv, tsv, xlsx, jsonl")
        return override
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise TableError(f"cannot tell the format of {str(path)!r} from its extension; "
                         "use .csv, .tsv, .xlsx or .jsonl, or pass --format")
    return FORMATS[suffix]


def detect_encoding(path: str | os.PathLike) -> str:
    """UTF-8 (with or without BOM) or GB18030, judged on the first 64 KiB."""
    with open(path, "rb") as fh:
        sample = fh.read(SAMPLE_BYTES)
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
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


def open_table(path, *, fmt: str | None = None, encoding: str | None = None, sheet: str | None = None) -> TableReader:
    """Open ``path`` for streaming; errors name the file and what was wrong."""
    path = str(path)
    if os.path.isdir(path):
        raise TableError(f"input is a folder, not a file: {path}")
    if not os.path.exists(path):
        raise TableError(f"input file not found: {path}")
    fmt = table_format(path, fmt)
    if fmt == "xlsx":
        return _open_xlsx(path, sheet)
    encoding = encoding or detect_encoding(path)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise TableError(f"unknown encoding {encoding!r}") from None
    if fmt == "jsonl":
        return _open_jsonl(path, encoding)
    return _open_delimited(path, encoding, "\t" if fmt == "tsv" else ",", fmt)


def _text_lines(path: str, encoding: str) -> Iterator[str]:
    with open(path, encoding=encoding, errors="replace", newline="") as fh:
        yield from fh


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


def _open_delimited(path: str, encoding: str, delimiter: str, fmt: str) -> TableReader:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a message may be longer than the default 128 KiB
    records = _records(_text_lines(path, encoding), delimiter)
    try:
        first = next(records)
    except UnicodeDecodeError as exc:
        raise TableError(f"cannot decode {path} as {encoding}: {exc}; pass --encoding") from None
    except StopIteration:
        raise TableError(f"input file is empty: {path}") from None
    header = [name.strip() for name in _parse(first[1], delimiter)]
    if not any(header):
        raise TableError(f"input file has no header row: {path}")
    header = _unique_names(header)

    def rows() -> Iterator[Row]:
        width = len(header)
        for line, lines, balanced in records:
            text = "".join(lines)
            if not text.strip("\r\n"):
                continue
            if not balanced:
                values = text.rstrip("\r\n").split(delimiter)
                yield Row(line, _fit(values, width, delimiter), "unbalanced quote")
                continue
            try:
                values = _parse(lines, delimiter)
            except csv.Error as exc:
                yield Row(line, _fit(text.rstrip("\r\n").split(delimiter), width, delimiter), f"bad CSV: {exc}")
                continue
            error = None if len(values) == width else f"expected {width} fields, got {len(values)}"
            yield Row(line, _fit(values, width, delimiter), error)

    return TableReader(path, fmt, header, encoding, rows())


def _fit(values: list[str], width: int, delimiter: str) -> list[str]:
    """Pad short rows; fold the surplus of long rows into the last column, so nothing is lost."""
    if len(values) <= width:
        return values + [""] * (width - len(values))
    return values[: width - 1] + [delimiter.join(values[width - 1 :])]


def _unique_names(names: list[str]) -> list[str]:
    """Header names made unique (``内容``, ``内容.1``) and blank ones named by position."""
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


def _open_jsonl(path: str, encoding: str) -> TableReader:
    # Columns are the keys of the first object, then any new key as it appears would
    # change the header mid-stream; so the header is read in a first pass over keys.
    columns: dict[str, None] = {}
    with open(path, encoding=encoding, errors="replace") as fh:
        for line in fh:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                columns.update(dict.fromkeys(map(str, obj)))
    if not columns:
        raise TableError(f"no JSON objects found in {path}")
    header = list(columns)

    def rows() -> Iterator[Row]:
        with open(path, encoding=encoding, errors="replace") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    if not isinstance(obj, dict):
                        raise ValueError("not a JSON object")
                except ValueError as exc:
                    yield Row(number, [line.rstrip("\n")] + [""] * (len(header) - 1), f"invalid JSON: {exc}")
                    continue
                yield Row(number, [_cell(obj.get(name)) for name in header])

    return TableReader(path, "jsonl", header, encoding, rows())


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value != value:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _open_xlsx(path: str, sheet: str | None) -> TableReader:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a broken file
        raise TableError(f"cannot read {path} as XLSX: {exc}") from None
    if sheet is not None and sheet not in workbook.sheetnames:
        raise TableError(f"no sheet {sheet!r} in {path}; sheets: {', '.join(workbook.sheetnames)}")
    worksheet = workbook[sheet] if sheet else workbook.worksheets[0]
    cells = worksheet.iter_rows(values_only=True)
    try:
        header = _unique_names([_cell(v).strip() for v in next(cells)])
    except StopIteration:
        raise TableError(f"sheet {worksheet.title!r} of {path} is empty") from None

    def rows() -> Iterator[Row]:
        width = len(header)
        for number, values in enumerate(cells, 2):
            values = [_cell(v) for v in values]
            if not any(values):
                continue
            yield Row(number, _fit(values, width, " "))
        workbook.close()

    return TableReader(path, "xlsx", header, None, rows())


def detect_column(columns, candidates: list[str], what: str, required: bool = True) -> str | None:
    """The first column whose name matches a candidate (case-insensitive), else an error or None."""
    lowered = {str(c).strip().lower(): c for c in columns}
    for name in candidates:
        if name.lower() in lowered:
            return lowered[name.lower()]
    if required:
        raise TableError(f"no {what} column found; columns are: {', '.join(map(str, columns))}. "
                         f"Name it with --{what}-column")
    return None


def check_column(columns, name: str, what: str) -> str:
    """``name`` if it is a column, else an error listing the columns."""
    if name not in columns:
        raise TableError(f"{what} column {name!r} not found; columns are: {', '.join(map(str, columns))}")
    return name


def read_table(path, **kwargs):
    """A whole (small) table as a pandas DataFrame of strings; for notebooks and reviewed sheets."""
    import pandas as pd

    reader = open_table(path, **kwargs)
    frame = pd.DataFrame([row.values for row in reader.rows], columns=reader.columns, dtype=object)
    return frame.fillna("")


class TableWriter:
    """Write rows to CSV (UTF-8 with BOM), TSV, XLSX or JSONL through a temporary file.

    The file appears under its name only when ``close()`` succeeds; ``abort()`` (or an
    exception inside ``with``) leaves nothing behind. ``path`` ``-`` writes CSV to stdout.
    """

    def __init__(self, path, columns: list[str], fmt: str | None = None) -> None:
        self.path = str(path)
        self.columns = list(columns)
        self.format = "csv" if self.path == "-" and not fmt else table_format(self.path, fmt)
        if self.path == "-":
            self._tmp = None
            self._fh = sys.stdout
        else:
            folder = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(folder):
                raise TableError(f"output folder does not exist: {folder}")
            fd, self._tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(self.path)}.", suffix=".part")
            self._fh = os.fdopen(fd, "wb" if self.format == "xlsx" else "w",
                                 **({} if self.format == "xlsx" else {"encoding": "utf-8-sig" if self.format == "csv" else "utf-8", "newline": ""}))
        self._start()

    def _start(self) -> None:
        if self.format in ("csv", "tsv"):
            self._csv = csv.writer(self._fh, delimiter="\t" if self.format == "tsv" else ",")
            self._csv.writerow(self.columns)
        elif self.format == "xlsx":
            from openpyxl import Workbook

            self._book = Workbook(write_only=True)
            self._sheet = self._book.create_sheet("labels")
            self._sheet.append(self.columns)

    def write(self, values: list) -> None:
        """Write one row, values in the order of ``columns``."""
        if self.format in ("csv", "tsv"):
            self._csv.writerow(values)
        elif self.format == "xlsx":
            self._sheet.append([_xlsx_safe(v) for v in values])
        else:
            self._fh.write(json.dumps(dict(zip(self.columns, values)), ensure_ascii=False) + "\n")

    def close(self) -> None:
        """Finish the file and move it into place."""
        if self.format == "xlsx":
            self._book.save(self._fh)
        if self._tmp is None:
            self._fh.flush()
            return
        self._fh.close()
        os.replace(self._tmp, self.path)
        self._tmp = None

    def abort(self) -> None:
        """Drop the temporary file."""
        if self._tmp is not None:
            self._fh.close()
            Path(self._tmp).unlink(missing_ok=True)
            self._tmp = None

    def __enter__(self) -> "TableWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _xlsx_safe(value):
    """Strip characters XLSX cannot hold (control characters)."""
    if isinstance(value, str):
        return "".join(ch for ch in value if ch in "\t\n\r" or ord(ch) >= 32)
    return value

