"""Bad input, through the real entry points: every case has one defined, asserted outcome.

The outcomes are:

* a message with no signal still gets a label, with ``needs_review`` true;
* a table row always comes out, in order, with its original values and a ``status``;
* a file that cannot be used at all is a one-line error with exit code 2, no traceback,
  and no output file.

Every ``label`` run checks the row-count invariant (output rows == input data rows, same
order, original column values unchanged). The shipped default model is used throughout.
"""
import csv
import io
import json
import os
import re
import resource
import signal
import struct
import subprocess
import sys
import time
import zlib
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from classifier import LABELS, artifact, tabular
from classifier.batch import LABEL_COLUMNS
from classifier.cli import main
from classifier.tabular import neutralise, read_table

SCRIPT = Path(sys.executable).parent / "complaint-classifier"
MB = 1_000_000


@pytest.fixture(scope="module")
def model():
    return artifact.load()


# -- helpers ----------------------------------------------------------------------------------
def cli(capsys, *args):
    """``main(args)`` in this process: (exit code, stdout, stderr); never a traceback."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return code, out, err


def main_captured(*args):
    """``main(args)`` with its output captured, for module-scoped fixtures (capsys is per test)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def script(*args, stdin=None, timeout=60):
    """The installed console script, as a user runs it."""
    result = subprocess.run([str(SCRIPT), *map(str, args)], input=stdin, capture_output=True, timeout=timeout,
                            env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    result.err = result.stderr.decode("utf-8", "replace")
    assert "Traceback" not in result.err
    return result


def one_line_error(err: str, *words: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("complaint-classifier: error: "), err
    for word in words:
        assert word in lines[0], err


def write_csv(path: Path, header, rows) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_output(path: Path) -> list[list[str]]:
    csv.field_size_limit(1 << 30)
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.reader(fh))


def label(capsys, tmp_path, src: Path, header, rows, *extra, out_header=None) -> list[dict]:
    """Run ``label`` and check the row-count invariant; return the output rows as dicts."""
    out = tmp_path / "out.csv"
    code, _, err = cli(capsys, "label", src, "-o", out, "--jobs", "1", "-q", *extra)
    assert code == 0, err
    return check_rows(out, header, rows, out_header)


def check_rows(out: Path, header, rows, out_header=None) -> list[dict]:
    """The row-count invariant: one output row per input row, in order, original values unchanged."""
    table = read_output(out)
    out_header = list(out_header or header)
    assert table[0] == out_header + LABEL_COLUMNS
    data = table[1:]
    assert len(data) == len(rows)
    for original, row in zip(rows, data):
        assert row[: len(out_header)] == [neutralise(cell) for cell in original]  # as Excel is meant to see them
    for original, row in zip(rows, read_table(out).values.tolist()):
        assert row[: len(out_header)] == list(original)  # as our reader gives them back
    return [dict(zip(table[0], row)) for row in data]


def has_signal(model, text: str) -> bool:
    """Whether any word or character term of ``text`` is known (its form alone is no signal)."""
    return bool(np.diff(model.vectorizer_.transform(model.analyze([text])).indptr)[0])


def expected_status(text: str, max_chars: int = 2000) -> str:
    if not text.strip():
        return "empty"
    return "truncated" if len(text) > max_chars else "ok"


# -- messy messages: predict and label --------------------------------------------------------
MESSY = {
    "empty": "",
    "whitespace": " \t\u3000 \n ",
    "emoji_no_signal": "🦄🧿🪐",
    "emoji": "😀😡👍🏻🇨🇳",
    "punctuation": "？？？！！。。。...,,,~~",
    "control_and_nul": "\x00\x01\x07还没\x1b[31m发货\x7f\x0b\x0c\x00",
    "mixed_scripts": "Hello 你好 こんにちは 안녕하세요 привет مرحبا 還沒發貨",
    "digits_order_number": "20231115123456789",
    "html": "<div class='x'><b>还没发货</b><script>alert(1)</script></div>&nbsp;&lt;br&gt;",
    "nan": "NaN",
    "megabyte_chinese": "还没发货，" * (MB // 5),
}
NO_SIGNAL = ["empty", "whitespace", "emoji_no_signal"]


@pytest.fixture(scope="module")
def predicted():
    """``predict --json`` on every messy message in one run (one model load)."""
    code, out, err = main_captured("predict", "--json", *MESSY.values())
    assert code == 0 and "Traceback" not in err
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == len(MESSY)
    return dict(zip(MESSY, records))


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """``label`` on a table with every messy message in the text column and another column."""
    tmp = tmp_path_factory.mktemp("messy")
    header = ["id", "内容", "备注"]
    rows = []
    for name, text in MESSY.items():
        rows += [[f"{name}-1", text, "x"], [f"{name}-2", "快递丢了", text], [f"{name}-3", text, text]]
    src = write_csv(tmp / "in.csv", header, rows)
    out = tmp / "out.csv"
    code, _, err = main_captured("label", src, "-o", out, "--jobs", "1", "-q")
    assert code == 0 and "Traceback" not in err
    return check_rows(out, header, rows)


@pytest.mark.parametrize("name", list(MESSY))
def test_predict_messy_message(name, model, predicted):
    text, record = MESSY[name], predicted[name]
    assert record["text"] == text
    if not text.strip():
        assert record["status"] == "empty" and record["label"] == "" and record["needs_review"] is False
        return
    assert record["label"] in LABELS
    assert record["status"] == ("truncated" if len(text) > model.max_chars else "ok")
    if not has_signal(model, text):
        assert record["needs_review"] is True and "no_known_term" in record["review_reasons"]
    if not record["needs_review"]:
        assert record["probability"] >= model.review_threshold and not record["review_reasons"]
    assert record["needs_review"] == bool(record["review_reasons"])


@pytest.mark.parametrize("name", list(MESSY))
def test_label_messy_cell(name, model, labelled):
    text = MESSY[name]
    out = [row for row in labelled if row["id"].rsplit("-", 1)[0] == name]
    assert [r["id"] for r in out] == [f"{name}-1", f"{name}-2", f"{name}-3"]
    status = expected_status(text, model.max_chars)
    assert [r["status"] for r in out] == [status, "ok", status]
    for row in out:
        if row["status"] in ("ok", "truncated"):
            assert row["label"] in LABELS and 0 < float(row["confidence"]) <= 1
            if not has_signal(model, row["内容"]):
                assert row["needs_review"] == "true"
        else:
            assert row["label"] == "" and row["needs_review"] == ""


def test_console_script_predict_empty_and_megabyte_stdin():
    result = script("predict", "--json", "")
    assert result.returncode == 0
    record = json.loads(result.stdout)
    assert record["text"] == "" and record["status"] == "empty" and record["label"] == ""

    big = "快递三天了还没到，" * (MB // 9)
    result = script("predict", "--json", "-", stdin=(big + "\n").encode("utf-8"))
    assert result.returncode == 0, result.err
    (line,) = result.stdout.decode("utf-8").splitlines()
    record = json.loads(line)
    assert record["text"] == big and record["status"] == "truncated" and record["label"] in LABELS


def test_predict_text_that_looks_like_an_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "-_-"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err
    code, out, err = cli(capsys, "predict", "--json", "--", "-_-")
    assert code == 0 and json.loads(out)["text"] == "-_-"


def test_predict_megabyte_latin_run_finishes():
    try:
        result = subprocess.run([str(SCRIPT), "predict", "--json", "-"], input=b"a" * MB + b"\n",
                                capture_output=True, timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail("predict on a 1 MB Latin message did not finish in 5 s")
    assert result.returncode == 0


# -- encodings --------------------------------------------------------------------------------
def test_invalid_utf8_bytes_become_replacement_characters(capsys, tmp_path):
    src = tmp_path / "bad.csv"
    utf8 = lambda text: text.encode("utf-8")  # noqa: E731
    src.write_bytes(utf8("id,内容,备注\n1,还没发货") + b"\xff\xfe" + utf8("了,好\n2,快递丢了,x") + b"\xe5"
                    + utf8("y\n3,ok,退款\n"))
    rows = [["1", "还没发货\ufffd\ufffd了", "好"], ["2", "快递丢了", "x\ufffdy"], ["3", "ok", "退款"]]
    out = label(capsys, tmp_path, src, ["id", "内容", "备注"], rows)
    assert [r["status"] for r in out] == ["ok_decoding_errors", "ok_decoding_errors", "ok"]


def test_decoding_errors_after_the_detection_sample_are_marked(capsys, tmp_path):
    src = tmp_path / "late.csv"
    good = "".join(f"{i},第{i}条 还没发货\n" for i in range(1, 6000)).encode("utf-8")
    assert len(good) > 2 * 65536
    src.write_bytes("id,内容\n".encode("utf-8") + good + b"6000,\xff\xfe\xfd\n")
    code, _, err = cli(capsys, "label", src, "-o", tmp_path / "out.csv", "--jobs", "1")
    assert code == 0 and "1 row(s) held bytes that are not valid" in err
    statuses = [row[-1] for row in read_output(tmp_path / "out.csv")[1:]]
    assert statuses[-1] == "ok_decoding_errors" and set(statuses[:-1]) == {"ok"}


def test_stray_byte_does_not_turn_utf8_into_another_encoding(capsys, tmp_path):
    src = tmp_path / "stray.csv"
    src.write_bytes(b"id,text\n1,ok \xe5 not shipped\n" + "2,还没发货\n3,快递丢了\n".encode("utf-8"))
    rows = [["1", "ok \ufffd not shipped"], ["2", "还没发货"], ["3", "快递丢了"]]
    out = label(capsys, tmp_path, src, ["id", "text"], rows)
    assert out[1]["label"] == "late_shipment"


def test_wrong_explicit_encoding_keeps_every_row(capsys, tmp_path):
    src = tmp_path / "gb.csv"
    src.write_bytes("id,text\n1,还没发货\n2,快递丢了\n".encode("gb18030"))
    as_utf8 = lambda text: text.encode("gb18030").decode("utf-8", "surrogateescape")  # noqa: E731
    rows = [["1", re.sub("[\udc80-\udcff]", "\ufffd", as_utf8("还没发货"))],
            ["2", re.sub("[\udc80-\udcff]", "\ufffd", as_utf8("快递丢了"))]]  # one U+FFFD per undecodable byte
    label(capsys, tmp_path, src, ["id", "text"], rows, "--encoding", "utf-8")


def test_gb18030_after_an_ascii_prefix_longer_than_the_sample(capsys, tmp_path):
    header = ["id", "text"]
    rows = [[str(i), f"order {i} ok"] for i in range(8000)] + [["8000", "还没发货"], ["8001", "快递丢了"]]
    src = write_csv(tmp_path / "in.csv", header, [])
    with open(src, "a", encoding="gb18030", newline="") as fh:
        csv.writer(fh).writerows(rows)
    assert src.read_bytes()[: 2 * tabular.SAMPLE_BYTES].isascii()
    out = label(capsys, tmp_path, src, header, rows)
    assert {r["status"] for r in out} == {"ok"} and out[-2]["label"] == "late_shipment"


def test_ascii_prefix_beyond_the_search_is_read_as_utf8_and_the_damage_shown(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(tabular, "MAX_ASCII_PREFIX", 2 * tabular.SAMPLE_BYTES)
    src = tmp_path / "in.csv"
    src.write_bytes(b"id,text\n" + b"".join(b"%d,order %d ok\n" % (i, i) for i in range(12000))
                    + "12000,还没发货\n".encode("gb18030"))
    assert tabular.detect_encoding(src) == "utf-8"
    code, _, err = cli(capsys, "label", src, "-o", tmp_path / "out.csv", "--jobs", "1")
    assert code == 0 and "1 row(s) held bytes that are not valid utf-8" in err and "--encoding" in err
    assert read_output(tmp_path / "out.csv")[-1][-1] == "ok_decoding_errors"


# -- long lines and quotes --------------------------------------------------------------------
def test_megabyte_quoted_field_with_commas_quotes_and_newlines(capsys, tmp_path):
    big = ('他说"还没发货",我说：\n好的，' * (MB // 14))[:MB]
    header = ["id", "内容"]
    rows = [["1", big], ["2", "快递丢了"], ["3", big[:150_000]]]
    out = label(capsys, tmp_path, write_csv(tmp_path / "in.csv", header, rows), header, rows)
    assert [r["status"] for r in out] == ["truncated", "ok", "truncated"]


def test_line_with_thousands_of_fields_folds_into_the_last_column(capsys, tmp_path):
    src = tmp_path / "wide.csv"
    fields = [f"f{i}" for i in range(20000)]
    src.write_text("id,内容\n1," + ",".join(fields) + "\n2,还没发货\n", encoding="utf-8")
    out = label(capsys, tmp_path, src, ["id", "内容"], [["1", ",".join(fields)], ["2", "还没发货"]])
    assert out[0]["status"] == "error:expected 2 fields; got 20001" and out[1]["status"] == "ok"


def test_unbalanced_and_stray_quotes(capsys, tmp_path):
    src = tmp_path / "quotes.csv"
    src.write_text('id,内容\n1,好的\n2,"没有闭合的引号\n3,快递丢了\n4,他说"还没发货\n'
                   '5,买了个5"的屏幕\n6,"正常,引号"\n7,"最后一行没闭合\n', encoding="utf-8")
    rows = [["1", "好的"], ["2", '"没有闭合的引号'], ["3", "快递丢了"], ["4", '他说"还没发货'],
            ["5", '买了个5"的屏幕'], ["6", "正常,引号"], ["7", '"最后一行没闭合']]
    out = label(capsys, tmp_path, src, ["id", "内容"], rows)
    assert [r["status"] for r in out] == ["ok", "error:unbalanced quote", "ok", "ok", "ok", "ok",
                                          "error:unbalanced quote"]


def test_console_script_label_with_bad_lines(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text('id,内容\n1,"没闭合\n2,还没发货,多\n3\n4,' + "好" * 300_000 + "\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    result = script("label", src, "-o", out, "--jobs", "1")
    assert result.returncode == 0, result.err
    table = read_output(out)
    assert [r[0] for r in table[1:]] == ["1", "2", "3", "4"]
    assert [r[1] for r in table[1:]] == ['"没闭合', "还没发货,多", "", "好" * 300_000]
    assert [r[-1] for r in table[1:]] == ["error:unbalanced quote", "error:expected 2 fields; got 3",
                                          "error:expected 2 fields; got 1", "truncated"]


def test_quoted_fields_with_many_lines(capsys, tmp_path):
    header = ["id", "内容", "备注"]
    rows = [["1", "\n".join(f"第{i}行" for i in range(60)), "a\r\nb"], ["2", "还没发货", '"'],
            ["3", "\r\n" * 5000 + "快递丢了", '""\n""']]
    out = label(capsys, tmp_path, write_csv(tmp_path / "in.csv", header, rows), header, rows)
    assert [r["status"] for r in out] == ["ok", "ok", "truncated"]


def test_unbalanced_quote_before_many_rows(capsys, tmp_path):
    src = tmp_path / "in.csv"
    rows = [["1", '"开头的引号没有闭合']] + [[str(i), f"第{i}条 还没发货"] for i in range(2, 3000)]
    src.write_text("id,内容\n" + "".join(f"{a},{b}\n" for a, b in rows), encoding="utf-8")
    out = label(capsys, tmp_path, src, ["id", "内容"], rows)
    assert out[0]["status"] == "error:unbalanced quote" and {r["status"] for r in out[1:]} == {"ok"}


# -- headers ----------------------------------------------------------------------------------
def test_missing_header_row_is_a_clear_error(capsys, tmp_path):
    src = tmp_path / "noheader.csv"
    src.write_text("1,还没发货\n2,快递丢了\n", encoding="utf-8")
    code, _, err = cli(capsys, "label", src, "-o", tmp_path / "o.csv", "--jobs", "1")
    assert code == 2
    one_line_error(err, "no text column found", "--text-column")
    assert not (tmp_path / "o.csv").exists()


def test_blank_header_row_is_a_clear_error(capsys, tmp_path):
    src = tmp_path / "blank.csv"
    src.write_text(",,\n1,还没发货,x\n", encoding="utf-8")
    code, _, err = cli(capsys, "label", src, "-o", tmp_path / "o.csv", "-q")
    assert code == 2
    one_line_error(err, "no header row")
    assert not (tmp_path / "o.csv").exists()


def test_header_with_a_missing_name(capsys, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("id,\n1,还没发货\n2,\n", encoding="utf-8")
    code, _, err = cli(capsys, "label", src, "-o", tmp_path / "o.csv", "-q")
    assert code == 2 and "column_2" in err
    out = label(capsys, tmp_path, src, ["id", "column_2"], [["1", "还没发货"], ["2", ""]], "--text-column", "column_2")
    assert [r["status"] for r in out] == ["ok", "empty"]


def test_header_shorter_than_the_rows(capsys, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("内容\n还没发货,多出来的\n快递丢了\n", encoding="utf-8")
    out = label(capsys, tmp_path, src, ["内容"], [["还没发货,多出来的"], ["快递丢了"]])
    assert [r["status"] for r in out] == ["error:expected 1 fields; got 2", "ok"]


def test_duplicate_headers(capsys, tmp_path):
    src = tmp_path / "dup.csv"
    src.write_text("内容,内容,内容.1,label\n还没发货,好的,快递丢了,mine\n,x,y,z\n", encoding="utf-8")
    rows = [["还没发货", "好的", "快递丢了", "mine"], ["", "x", "y", "z"]]
    out = label(capsys, tmp_path, src, None, rows, out_header=["内容", "内容.2", "内容.1", "input_label"])
    assert [r["status"] for r in out] == ["ok", "empty"]  # the first 内容 is the text column
    assert out[0]["label"] == "late_shipment"


def test_title_lines_above_the_header_are_skipped_and_said(capsys, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("2026年11月 聊天导出\n\n会话ID,发送方,聊天内容\ns1,买家,还没发货\n", encoding="utf-8")
    code, _, err = cli(capsys, "label", src, "-o", tmp_path / "out.csv", "--jobs", "1")
    assert code == 0 and "note: header found on line 3; 2 line(s) above it skipped" in err
    assert [row[2] for row in read_output(tmp_path / "out.csv")] == ["聊天内容", "还没发货"]


# -- NaN-like cells ---------------------------------------------------------------------------
NAN_LIKE = ["NaN", "nan", "null", "NULL", "None", "none", "N/A", "#N/A", "NA", "-", "undefined", "0"]


def test_nan_like_cells_are_kept_verbatim(capsys, tmp_path):
    header = ["id", "内容", "备注"]
    rows = [[str(i), value, value] for i, value in enumerate(NAN_LIKE)]
    src = write_csv(tmp_path / "in.csv", header, rows)
    out = label(capsys, tmp_path, src, header, rows)
    assert all(r["status"] == "ok" and r["label"] in LABELS for r in out)

    jsonl = tmp_path / "out.jsonl"
    code, _, err = cli(capsys, "label", src, "-o", jsonl, "--jobs", "1", "-q")
    assert code == 0, err
    records = [json.loads(line) for line in jsonl.read_text("utf-8").splitlines()]
    assert [[r[c] for c in header] for r in records] == rows

    frame = read_table(src)
    assert frame.values.tolist() == rows


def test_nan_like_strings_in_jsonl_input(capsys, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": v}, ensure_ascii=False) + "\n"
                           for i, v in enumerate(NAN_LIKE)), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    code, _, err = cli(capsys, "label", src, "-o", out, "--jobs", "1", "-q")
    assert code == 0, err
    records = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert [r["text"] for r in records] == NAN_LIKE and all(r["status"] == "ok" for r in records)


# -- files that cannot be used ----------------------------------------------------------------
@pytest.mark.parametrize("content", ["id,内容\n", "id,内容", "\ufeffid,内容\r\n\r\n\r\n"])
def test_header_only_file(capsys, tmp_path, content):
    src = tmp_path / "header.csv"
    src.write_text(content, encoding="utf-8")
    assert label(capsys, tmp_path, src, ["id", "内容"], []) == []


def _zero_byte_file(tmp_path):
    src = tmp_path / "empty.csv"
    src.write_bytes(b"")
    return src


def _folder(tmp_path):
    folder = tmp_path / "data.csv"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("make_input, message", [
    (_zero_byte_file, "empty"),
    (_folder, "folder"),
    (lambda tmp_path: tmp_path / "nope" / "in.csv", "not found"),
], ids=["zero-byte file", "folder", "missing path"])
def test_unusable_input_is_a_one_line_error(capsys, tmp_path, make_input, message):
    src = make_input(tmp_path)
    code, _, err = cli(capsys, "label", src, "-o", tmp_path / "o.csv")
    assert code == 2
    one_line_error(err, message)
    result = script("label", src, "-o", tmp_path / "o.csv")
    assert result.returncode == 2
    one_line_error(result.err, message)
    assert not (tmp_path / "o.csv").exists()
    code, _, err = cli(capsys, "evaluate", src)
    assert code == 2 and err.count("\n") == 1


def test_output_in_a_missing_directory(capsys, tmp_path):
    src = write_csv(tmp_path / "in.csv", ["内容"], [["还没发货"]])
    for target in ("-o", "--report", "--conversations"):
        out = tmp_path / "o.csv" if target != "-o" else tmp_path / "missing" / "o.csv"
        extra = [target, tmp_path / "missing" / ("x.html" if target == "--report" else "x.csv")] if target != "-o" else []
        if target == "--conversations":
            extra.append("--by-conversation")
        code, _, err = cli(capsys, "label", src, "-o", out, "-q", "--jobs", "1", *extra)
        assert code == 2
        one_line_error(err, "does not exist")
        assert not out.exists()  # checked before any work is done
    result = script("label", src, "-o", tmp_path / "missing" / "o.csv")
    assert result.returncode == 2
    one_line_error(result.err, "does not exist")
    assert not (tmp_path / "missing").exists()


# -- hostile files: a clear error or kept rows, in bounded memory -------------------------------
GIB = 1 << 30
SHEET_NS = b'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
PACKAGE = {
    "[Content_Types].xml": b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
    b'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType='
    b'"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/'
    b'sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>',
    "_rels/.rels": b'<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
    b'relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    b'officeDocument" Target="xl/workbook.xml"/></Relationships>',
    "xl/workbook.xml": b'<?xml version="1.0"?><workbook ' + SHEET_NS + b' xmlns:r="http://schemas.openxmlformats.org/'
    b'officeDocument/2006/relationships"><sheets><sheet name="s" sheetId="1" r:id="rId1"/></sheets></workbook>',
    "xl/_rels/workbook.xml.rels": b'<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/'
    b'package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    b'relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>',
}


def write_xlsx(path: Path, sheet_parts, declared_size=None, members=None) -> Path:
    """An XLSX whose sheet XML is ``sheet_parts``, pairs of (bytes, times repeated); a repeated part
    is deflated once (a full flush makes each copy's compressed bytes the same), so a gigabyte of
    payload costs neither memory nor time. ``declared_size`` is the sheet size the zip claims;
    ``members`` adds or replaces parts (name: pairs)."""
    members = {**{name: [(data, 1)] for name, data in PACKAGE.items()}, "xl/worksheets/sheet1.xml": sheet_parts,
               **(members or {})}
    with open(path, "wb") as fh:
        directory = []
        for name, parts in members.items():
            deflate, crc, size, data = zlib.compressobj(6, zlib.DEFLATED, -15), 0, 0, b""
            for part, times in parts:
                data += (deflate.compress(part) + deflate.flush(zlib.Z_FULL_FLUSH)) * times
                for _ in range(times):
                    crc = zlib.crc32(part, crc)
                size += len(part) * times
            data += deflate.flush()
            claimed = size if declared_size is None or not name.endswith("sheet1.xml") else declared_size
            offset, encoded = fh.tell(), name.encode()
            fh.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(data), claimed, len(encoded), 0)
                     + encoded + data)
            directory.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(data), claimed,
                                         len(encoded), 0, 0, 0, 0, 0, offset) + encoded)
        start = fh.tell()
        fh.write(b"".join(directory))
        fh.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(directory), len(directory), fh.tell() - start, start, 0))
    return path


def sheet(second_cell: list, doctype: bytes = b"") -> list:
    """Sheet XML parts: a header cell 内容 and a second row with ``second_cell`` (parts) as its text."""
    return [(b'<?xml version="1.0"?>' + doctype + b"<worksheet " + SHEET_NS + b'><sheetData><row r="1"><c r="A1" '
             + 't="inlineStr"><is><t>内容</t></is></c></row><row r="2"><c r="A2" t="inlineStr"><is><t>'.encode(), 1),
            *second_cell, (b"</t></is></c></row></sheetData></worksheet>", 1)]


GIGABYTE_CELL = [(b"A" * (1 << 20), 1100)]  # one cell of 1.07 GiB


def zip_bomb(tmp_path):
    path = write_xlsx(tmp_path / "bomb.xlsx", sheet(GIGABYTE_CELL))
    assert path.stat().st_size < 2 * MB
    return path


def lying_zip_bomb(tmp_path):
    """The same sheet, with a zip directory that claims it is 1 MB."""
    return write_xlsx(tmp_path / "lie.xlsx", sheet(GIGABYTE_CELL), declared_size=MB)


def billion_laughs(tmp_path):
    entities = b"".join(b'<!ENTITY l%d "%s">' % (i, b"&l%d;" % (i - 1) * 10 if i else b"lol") for i in range(10))
    return write_xlsx(tmp_path / "laughs.xlsx", sheet([(b"&l9;", 1)], b"<!DOCTYPE w [" + entities + b"]>"))


def shared_strings_bomb(tmp_path):
    """80 MiB of short shared strings, compressed only 9×: 9 MB that openpyxl would hold as 0.6 GB of strings."""
    block = b"".join(b"<si><t>%d</t></si>" % i for i in range(60_000))
    types = PACKAGE["[Content_Types].xml"].replace(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" ContentType='
                                                  b'"application/vnd.openxmlformats-officedocument.spreadsheetml.'
                                                  b'sharedStrings+xml"/></Types>')
    strings = [(b'<?xml version="1.0"?><sst ' + SHEET_NS + b">", 1), (block, (80 << 20) // len(block)), (b"</sst>", 1)]
    return write_xlsx(tmp_path / "strings.xlsx", sheet([(b"x", 1)]),
                      members={"[Content_Types].xml": [(types, 1)], "xl/sharedStrings.xml": strings})


def styles_bomb(tmp_path):
    """20 MiB of cell styles, compressed 10×: openpyxl would parse them into 0.8 GB of objects."""
    block = b"".join(b'<xf numFmtId="%d" fontId="%d"/>' % (i, i % 7) for i in range(30_000))
    styles = [(b'<?xml version="1.0"?><styleSheet ' + SHEET_NS + b"><cellXfs>", 1), (block, (20 << 20) // len(block)),
              (b"</cellXfs></styleSheet>", 1)]
    return write_xlsx(tmp_path / "styles.xlsx", sheet([(b"x", 1)]), members={"xl/styles.xml": styles})


def hundred_megabyte_field(tmp_path):
    path = tmp_path / "field.csv"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('id,内容\n1,"')
        for _ in range(100):
            fh.write('还没发货, ""快"" ' * (MB // 20))  # 1 MB of text with commas and (escaped) quotes
        fh.write('"\n2,快递丢了\n')
    assert path.stat().st_size > 100 * MB
    return path


def nul_bytes(tmp_path):
    path = tmp_path / "nul.csv"
    path.write_bytes(b"\0" * (20 * MB))
    return path


def deep_jsonl(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text('{"内容": "还没发货"}\n' + '{"a":' * 100_000 + "1" + "}" * 100_000 + '\n{"内容": "快递丢了"}\n',
                    encoding="utf-8")
    return path


HOSTILE = {
    "xlsx zip bomb": (zip_bomb, "would expand to 1,153,"),
    "xlsx zip bomb, size hidden": (lying_zip_bomb, "Bad CRC-32"),
    "billion laughs": (billion_laughs, "XML entities"),
    "xlsx shared strings 80 MiB": (shared_strings_bomb, "more than the 64 MiB that can be read into memory"),
    "xlsx styles 20 MiB": (styles_bomb, "more than the 16 MiB that can be read into memory"),
    "100 MB field": (hundred_megabyte_field, ["error:line too long", "ok"]),
    "NUL bytes": (nul_bytes, "NUL bytes"),
    "JSON nested 100,000 deep": (deep_jsonl, ["ok", "error:invalid JSON: nested too deeply", "ok"]),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_file_ends_in_a_clear_error_or_kept_rows_in_bounded_memory(tmp_path, name):
    make, expected = HOSTILE[name]
    src, out = make(tmp_path), tmp_path / "out.csv"
    peak = tmp_path / "peak"
    # GNU time reports the peak RSS of the command alone (a child of this process would inherit ours at exec)
    proc = subprocess.run(["/usr/bin/time", "-o", str(peak), "-f", "%M", str(SCRIPT), "label", str(src), "-o", str(out),
                           "--jobs", "1", "-q"], capture_output=True, timeout=120)
    err = proc.stderr.decode("utf-8", "replace")
    assert int(peak.read_text().split()[-1]) < 1_000_000, f"peak RSS {peak.read_text()} KiB"  # under 1 GB
    assert "Traceback" not in err
    if isinstance(expected, str):
        assert proc.returncode == 2
        one_line_error(err, expected)
        assert not out.exists()
    else:
        assert proc.returncode == 0, err
        assert [row[-1] for row in read_output(out)[1:]] == expected


# -- a full disk, two runs on one output name ---------------------------------------------------
EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "examples" / "chat_export_gb18030.csv"


def file_size_limit(limit: int):
    """A ``preexec_fn``: files over ``limit`` bytes fail to grow with EFBIG, as on a full disk."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize("output, extra, failing", [
    ("out.csv", [], "out.csv"),
    ("out.xlsx", [], "out.xlsx"),
    ("out.jsonl", [], "out.jsonl"),
    ("-", ["--by-conversation", "--conversations", "conv.xlsx"], "conv.xlsx"),
    ("-", ["--report", "report.html"], "report.html"),
    ("-", ["--report", "report.md"], "report.md"),
], ids=["csv", "xlsx", "jsonl", "conversations", "html report", "markdown report"])
def test_full_disk_is_one_error_naming_the_file_and_leaves_no_temporary_file(tmp_path, output, extra, failing):
    folder = tmp_path / "work"
    folder.mkdir()
    result = subprocess.run([str(SCRIPT), "label", str(EXAMPLE), "-o", output, "--jobs", "2", "-q", *extra],
                            cwd=folder, capture_output=True, timeout=60, preexec_fn=file_size_limit(2000),
                            env={**os.environ, "TMPDIR": str(tmp_path)})  # openpyxl stages XLSX sheets in TMPDIR
    err = result.stderr.decode("utf-8")
    assert result.returncode == 2
    one_line_error(err, f"cannot write {'the report ' if 'report' in failing else ''}{failing}: File too large")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["work"]  # nothing written, nothing left behind


def test_two_runs_on_one_output_name_never_mix(tmp_path):
    """Both write the whole file beside the output and rename it into place: the last one wins, whole."""
    small = write_csv(tmp_path / "small.csv", ["内容"], [["还没发货"]] * 10)
    big = write_csv(tmp_path / "big.csv", ["内容"], [[f"第{i}条 快递丢了"] for i in range(40_000)])
    whole = {"small": ["还没发货"] * 10, "big": [f"第{i}条 快递丢了" for i in range(40_000)]}
    out = tmp_path / "out.csv"
    runs = [subprocess.Popen([str(SCRIPT), "label", str(src), "-o", str(out), "--jobs", "1", "-q"],
                             stderr=subprocess.PIPE) for src in (big, small)]
    finished, seen = [], []
    while len(finished) < 2:
        finished += [run for run in runs if run.poll() is not None and run not in finished]
        if out.exists():  # whenever the file is there, it is one run's whole output
            texts = [row[0] for row in read_output(out)[1:]]
            seen += [name for name, rows in whole.items() if rows == texts and name not in seen[-1:]]
            assert texts in whole.values()
        time.sleep(0.05)
    assert [run.returncode for run in runs] == [0, 0]
    assert finished == runs[::-1]  # the small run, started second, ends first ...
    assert seen == ["small", "big"]  # ... and is replaced, whole, by the big one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv", "out.csv", "small.csv"]


# -- damaged text in every text format ----------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_rows_with_undecodable_bytes_are_marked_and_counted(capsys, tmp_path, fmt):
    utf8 = lambda text: text.encode("utf-8")  # noqa: E731
    lines = {"csv": [b"id,text", b"1,ok", b"2,bad \xff here", b"3,\xe5 too"],
             "tsv": [b"id\ttext", b"1\tok", b"2\tbad \xff here", b"3\t\xe5 too"],
             "jsonl": [utf8('{"id": "1", "text": "ok"}'), b'{"id": "2", "text": "bad \xff here"}',
                       b'{"id": "3", "text": "\xe5 too"}']}[fmt]
    src = tmp_path / f"in.{fmt}"
    src.write_bytes(b"\n".join(lines) + b"\n")
    code, _, err = cli(capsys, "label", src, "-o", tmp_path / "out.csv", "--jobs", "1", "--encoding", "utf-8")
    assert code == 0, err
    table = read_output(tmp_path / "out.csv")
    assert [row[1] for row in table[1:]] == ["ok", "bad \ufffd here", "\ufffd too"]
    assert [row[-1] for row in table[1:]] == ["ok", "ok_decoding_errors", "ok_decoding_errors"]
    assert "note: 2 row(s) held bytes that are not valid utf-8" in err


# -- lone surrogates: a broken escape or undecodable bytes never end a run -----------------------
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_json_escapes_of_lone_surrogates_are_marked_not_fatal(capsys, tmp_path, jobs):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "1", "text": "\\ud83d 假货"}\n'
                   '{"id": "2", "text": "\\ud83d\\ude00 还没发货"}\n'  # a whole pair is one character
                   '{"id": "3", "text": "好的", "extra": {"note": "\\udfff"}}\n'
                   '{"id": "4", "\\udc80": "x", "text": "快递丢了"}\n', encoding="utf-8")
    code, _, err = cli(capsys, "label", src, "-o", tmp_path / "out.csv", "--jobs", jobs)
    assert code == 0, err
    table = read_output(tmp_path / "out.csv")
    assert table[0][:4] == ["id", "text", "extra", "\ufffd"]
    assert [row[:4] for row in table[1:]] == [["1", "\ufffd 假货", "", ""], ["2", "😀 还没发货", "", ""],
                                              ["3", "好的", '{"note": "\ufffd"}', ""], ["4", "快递丢了", "", "x"]]
    assert [row[-1] for row in table[1:]] == ["ok_decoding_errors", "ok", "ok_decoding_errors", "ok"]
    assert "note: 2 row(s) held bytes that are not valid utf-8" in err


def test_console_script_predict_with_undecodable_bytes_in_stdin_and_arguments():
    result = script("predict", "--json", "-", stdin="好的\n".encode("utf-8") + b"\xff\xfe" + "假货\n".encode("utf-8"))
    assert result.returncode == 0, result.err
    records = [json.loads(line) for line in result.stdout.decode("utf-8").splitlines()]
    assert [(r["text"], r["status"]) for r in records] == [("好的", "ok"), ("\ufffd\ufffd假货", "ok_decoding_errors")]
    assert records[1]["label"] in LABELS
    result = subprocess.run([str(SCRIPT), "predict", b"\xff\xfe" + "假货".encode("utf-8")], capture_output=True,
                            timeout=60, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    out = result.stdout.decode("utf-8")
    assert result.returncode == 0 and not result.stderr
    assert "消息：\ufffd\ufffd假货" in out and "无法识别的字节" in out


def test_library_labels_text_with_lone_surrogates(model):
    texts = ["\ud83d 假货", "\udcff" + "还没发货" * 600, "好的"]
    assert [p.status for p in model.classify(texts)] == ["ok_decoding_errors", "truncated_decoding_errors", "ok"]
    assert len(model.predict(texts)) == 3 and model.decide(texts).label.shape == (3,)


# -- stdout closed early (``| head``) ------------------------------------------------------------
@pytest.mark.parametrize("command", ["label", "predict"])
def test_closed_stdout_pipe_ends_the_run_quietly(tmp_path, command):
    texts = [f"第{i}条 还没发货，怎么回事" for i in range(3000)]  # far more output than a pipe holds
    if command == "label":
        args = ["label", write_csv(tmp_path / "in.csv", ["内容"], [[t] for t in texts]), "-o", "-", "-q", "--jobs", "2"]
    else:
        args = ["predict", "--json", "-"]
    proc = subprocess.Popen([str(SCRIPT), *map(str, args)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    if command == "predict":
        proc.stdin.write("".join(t + "\n" for t in texts).encode("utf-8"))
    proc.stdin.close()
    assert proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode("utf-8", "replace")
    assert proc.wait(timeout=60) == 0 and err == ""  # no error, no "Exception ignored … BrokenPipeError"


# -- formulas from the input are text in every output -------------------------------------------
FORMULA_HEADER = ["=HYPERLINK(\"http://x.cn\",\"点这里\")", "会话ID", "发送方", "内容", "@SUM(A1)"]
FORMULA_ROWS = [["=1+1", "=cmd|' /C calc'!A0", "买家", "=HYPERLINK(\"http://x.cn\",\"退款\") 还没发货", "+1"],
                ["-1", "@c2", "买家", "@SUM(1) 快递丢了", "\t=1"],
                ["x", "=cmd|' /C calc'!A0", "买家", "-2 好的", "=A1"]]


def live_cells(path: Path) -> list[str]:
    """The cells of a CSV, TSV or XLSX file that a spreadsheet would run as formulas."""
    if path.suffix == ".xlsx":
        from openpyxl import load_workbook

        return [c.value for row in load_workbook(path).active.iter_rows() for c in row if c.data_type == "f"]
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = csv.reader(fh, delimiter="\t" if path.suffix == ".tsv" else ",")
        return [cell for row in rows for cell in row if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "xlsx"])
def test_formulas_in_headers_and_cells_are_text_in_labels_conversations_and_review_sheets(capsys, tmp_path, fmt):
    src = write_csv(tmp_path / "in.csv", FORMULA_HEADER, FORMULA_ROWS)
    out, conversations, sheet_ = tmp_path / f"out.{fmt}", tmp_path / f"conv.{fmt}", tmp_path / f"review.{fmt}"
    code, _, err = cli(capsys, "label", src, "-o", out, "--by-conversation", "--conversations", conversations,
                       "--text-column", "内容", "--jobs", "1", "-q")
    assert code == 0, err
    code, _, err = cli(capsys, "sample", src, "-n", "3", "-o", sheet_, "--text-column", "内容")
    assert code == 0, err
    for path in (out, conversations, sheet_):
        assert live_cells(path) == [], path.name
    labelled, review = read_table(out), read_table(sheet_)
    assert list(labelled.columns[:5]) == FORMULA_HEADER and list(review.columns[:5]) == FORMULA_HEADER
    assert labelled.iloc[:, :5].values.tolist() == FORMULA_ROWS
    assert sorted(review.iloc[:, :5].values.tolist()) == sorted(FORMULA_ROWS)
    assert set(read_table(conversations)["conversation_id"]) == {"=cmd|' /C calc'!A0", "@c2"}


def test_leading_apostrophe_in_a_table_we_did_not_write_is_kept(capsys, tmp_path):
    header = ["会话ID", "发送方", "聊天内容"]
    rows = [["s1", "买家", "'-_-' 无语"], ["'s2", "买家", "'=1+1 还没发货"], ["s3", "'买家", "''+1 好的"]]
    src = write_csv(tmp_path / "in.csv", header, rows)
    out = label(capsys, tmp_path, src, header, rows)  # every cell as the buyer's export holds it
    assert [r["status"] for r in out] == ["ok", "ok", "not_buyer"]
    assert read_table(src).values.tolist() == rows  # as evaluate and train --extra read a table from elsewhere


def test_our_outputs_are_recognised_as_ours():
    from classifier.batch import CONVERSATION_OUTPUT_COLUMNS, output_columns
    from classifier.sampling import SHEET_COLUMNS

    assert tabular.is_own_output(output_columns(["内容"])) and tabular.is_own_output(CONVERSATION_OUTPUT_COLUMNS)
    assert tabular.is_own_output(["内容"] + SHEET_COLUMNS)
    assert not tabular.is_own_output(["text", "label", "status", "correct_label", "confidence"])


def test_xlsx_messages_saved_as_formulas_are_read_as_their_text(capsys, tmp_path):
    """pandas (and other writers) save a cell that starts with ``=`` as a formula with no saved value."""
    import pandas as pd

    src = tmp_path / "pd.xlsx"
    messages = ["=_= 还不发货啊", "好的", '=HYPERLINK("http://x.cn","退款")']
    pd.DataFrame({"发送方": ["买家"] * 3, "聊天内容": messages}).to_excel(src, index=False)
    code, _, err = cli(capsys, "label", src, "-o", tmp_path / "out.jsonl", "--jobs", "1")
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text("utf-8").splitlines()]
    assert code == 0 and [r["聊天内容"] for r in rows] == messages and all(r["status"] == "ok" for r in rows)
    assert "note: 2 cell(s) held a formula with no saved value" in err
