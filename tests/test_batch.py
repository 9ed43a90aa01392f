"""Batch labelling: formats, encodings, columns, roles, conversations, bad rows, atomic output.

Every test checks the row-count invariant: every input row comes out, in order.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from classifier import artifact
from classifier.batch import label_table
from classifier.tabular import TableError
from conftest import read_csv, write_csv

CHAT = [
    ["s1", "买家", "2026-11-01 10:00", "在吗"],
    ["s1", "卖家", "2026-11-01 10:01", "亲，在的"],
    ["s1", "买家", "2026-11-01 10:02", "拍了五天了还不发货，怎么回事"],
    ["s2", "买家", "2026-11-02 09:00", "好的谢谢"],
    ["s2", "客服", "2026-11-02 09:01", "不客气"],
    ["s3", "买家", "2026-11-03 12:00", ""],
]
HEADER = ["会话ID", "发送方", "时间", "聊天内容"]


@pytest.fixture(scope="module")
def model():
    return artifact.load()


def run(model, src, out, **kwargs):
    summary = label_table(src, out, model, jobs=kwargs.pop("jobs", 1), **kwargs)
    summary.check()
    return summary


def assert_same_rows(src_rows, out_rows, columns):
    assert len(out_rows) == len(src_rows)
    for original, row in zip(src_rows, out_rows):
        assert [row[c] for c in columns] == original


def test_chinese_headers_roles_and_gb18030(tmp_path, model):
    src = write_csv(tmp_path / "chat.csv", HEADER, CHAT, encoding="gb18030")
    out = tmp_path / "out.csv"
    summary = run(model, src, out)
    assert (summary.columns.text, summary.columns.role, summary.columns.conversation, summary.columns.time) == \
        ("聊天内容", "发送方", "会话ID", "时间")
    assert summary.encoding == "gb18030"
    rows = read_csv(out)
    assert_same_rows(CHAT, rows, HEADER)
    assert [r["status"] for r in rows] == ["ok", "not_buyer", "ok", "ok", "not_buyer", "empty"]
    assert all(r["label"] == "" for r in rows if r["status"] != "ok")
    assert summary.rows_read == 6 and summary.labelled == 3 and summary.skipped == {"empty": 1, "not_buyer": 2}


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_encodings_are_detected(tmp_path, model, encoding):
    src = write_csv(tmp_path / "in.csv", HEADER, CHAT, encoding=encoding)
    out = tmp_path / "out.csv"
    run(model, src, out)
    assert_same_rows(CHAT, read_csv(out), HEADER)


def test_encoding_override_and_undecodable(tmp_path, model):
    src = write_csv(tmp_path / "in.csv", HEADER, CHAT, encoding="gb18030")
    with pytest.raises((TableError, UnicodeError)):
        label_table(src, tmp_path / "o.csv", model, encoding="nonsense-enc", jobs=1)
    out = tmp_path / "out.csv"
    run(model, src, out, encoding="gb18030")
    assert_same_rows(CHAT, read_csv(out), HEADER)


def test_tsv_xlsx_jsonl_round_trip(tmp_path, model):
    from openpyxl import Workbook, load_workbook

    book = Workbook()
    sheet = book.active
    sheet.append(HEADER)
    for row in CHAT:
        sheet.append(row)
    book.save(tmp_path / "in.xlsx")
    run(model, tmp_path / "in.xlsx", tmp_path / "out.xlsx")
    values = list(load_workbook(tmp_path / "out.xlsx").active.iter_rows(values_only=True))
    assert len(values) == len(CHAT) + 1
    assert [[v or "" for v in row[:4]] for row in values[1:]] == CHAT

    (tmp_path / "in.tsv").write_text("\n".join("\t".join(r) for r in [HEADER] + CHAT) + "\n", encoding="utf-8")
    run(model, tmp_path / "in.tsv", tmp_path / "out.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text("utf-8").splitlines()]
    assert [[r[c] for c in HEADER] for r in rows] == CHAT


def test_sheet_option(tmp_path, model):
    from openpyxl import Workbook

    book = Workbook()
    book.active.title = "说明"
    book.active.append(["nothing here"])
    data = book.create_sheet("聊天")
    data.append(["内容"])
    data.append(["还没发货"])
    book.save(tmp_path / "in.xlsx")
    summary = run(model, tmp_path / "in.xlsx", tmp_path / "out.csv", sheet="聊天")
    assert summary.labelled == 1
    with pytest.raises(TableError, match="sheets: 说明, 聊天"):
        label_table(tmp_path / "in.xlsx", tmp_path / "o.csv", model, sheet="nope")


def test_flags_override_detection(tmp_path, model):
    rows = [["a", "客户", "东西坏了"], ["b", "商家", "抱歉"]]
    src = write_csv(tmp_path / "in.csv", ["cid", "who", "words"], rows)
    summary = run(model, src, tmp_path / "out.csv", text_column="words", role_column="who",
                  buyer_values=["客户"], conversation_column="cid")
    assert [r["status"] for r in read_csv(tmp_path / "out.csv")] == ["ok", "not_buyer"]
    assert summary.columns.conversation == "cid"


def test_by_conversation(tmp_path, model):
    src = write_csv(tmp_path / "chat.csv", HEADER, CHAT)
    conversations = tmp_path / "conv.csv"
    summary = run(model, src, tmp_path / "out.csv", by_conversation=True, conversation_output=conversations)
    rows = {r["conversation_id"]: r for r in read_csv(conversations)}
    assert summary.conversations == 2 and set(rows) == {"s1", "s2"}
    assert rows["s1"]["buyer_messages"] == "2" and rows["s2"]["buyer_messages"] == "1"
    assert rows["s1"]["label"] == "late_shipment" and rows["s1"]["is_dispute"] == "true"
    assert rows["s1"]["driving_message"] == "拍了五天了还不发货，怎么回事" and rows["s1"]["driving_line"] == "4"
    assert rows["s2"]["label"] == "other" and rows["s2"]["is_dispute"] == "false"


def test_conversation_label_follows_the_precedence(tmp_path, model):
    """A sure late shipment and a sure scam in one conversation: the conversation is fraud, with the
    late shipment listed, and its confidence is that of the scam message."""
    chat = [["c1", "买家", "拍了五天了还不发货，怎么回事"],
            ["c1", "买家", "有人冒充你们客服打电话让我点链接退款，还要我报验证码"],
            ["c1", "买家", "快递三天了物流一直不更新"],
            ["c2", "买家", "好的谢谢"]]
    src = write_csv(tmp_path / "chat.csv", ["会话ID", "发送方", "聊天内容"], chat)
    conversations = tmp_path / "conv.csv"
    run(model, src, tmp_path / "out.csv", by_conversation=True, conversation_output=conversations)
    messages = read_csv(tmp_path / "out.csv")
    assert [m["label"] for m in messages[:3]] == ["late_shipment", "fraud", "logistics"]
    rows = {r["conversation_id"]: r for r in read_csv(conversations)}
    assert rows["c1"]["label"] == "fraud" and rows["c1"]["driving_line"] == "3"
    assert float(rows["c1"]["confidence"]) == float(messages[1]["confidence"])
    assert rows["c1"]["other_disputes"] == "late_shipment; logistics"
    assert rows["c2"]["label"] == "other" and rows["c2"]["other_disputes"] == ""


def test_messages_without_a_conversation_id_are_in_no_conversation(tmp_path, model):
    chat = [["", "买家", "拍了五天了还不发货，怎么回事"], ["c1", "买家", "好的谢谢"], ["  ", "买家", "快递一直不更新"]]
    src = write_csv(tmp_path / "chat.csv", ["会话ID", "发送方", "聊天内容"], chat)
    conversations = tmp_path / "conv.csv"
    summary = run(model, src, tmp_path / "out.csv", by_conversation=True, conversation_output=conversations)
    assert [r["conversation_id"] for r in read_csv(conversations)] == ["c1"]
    assert summary.conversations == 1 and summary.without_conversation == 2
    assert [r["status"] for r in read_csv(tmp_path / "out.csv")] == ["ok", "ok", "ok"]


def test_by_conversation_needs_a_conversation_column(tmp_path, model):
    src = write_csv(tmp_path / "in.csv", ["内容"], [["x"]])
    with pytest.raises(TableError, match="conversation"):
        label_table(src, tmp_path / "o.csv", model, by_conversation=True, conversation_output=tmp_path / "c.csv")


def test_malformed_rows_are_kept_with_line_numbers(tmp_path, model):
    src = tmp_path / "bad.csv"
    src.write_text('id,内容\n1,好的\n2,还没发货,多出来的字段\n3,"没有闭合的引号\n4,快递丢了\n5\n', encoding="utf-8")
    out = tmp_path / "out.csv"
    summary = run(model, src, out)
    rows = read_csv(out)
    assert [r["id"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert rows[0]["status"] == "ok" and rows[3]["status"] == "ok"
    assert rows[1]["status"].startswith("error:") and rows[1]["内容"] == "还没发货,多出来的字段"
    assert rows[2]["status"] == "error:unbalanced quote" and "没有闭合的引号" in rows[2]["内容"]
    assert rows[4]["status"].startswith("error:expected 2 fields")
    assert summary.rows_read == 5


def test_xlsx_row_with_more_cells_than_the_header_is_an_error_row(tmp_path, model):
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["会话ID", "发送方", "聊天内容"])
    book.active.append(["s1", "买家", "好的谢谢", "备注：已退款"])
    book.active.append(["s2", "买家", "还没发货"])
    book.save(tmp_path / "in.xlsx")
    summary = run(model, tmp_path / "in.xlsx", tmp_path / "out.csv")
    rows = read_csv(tmp_path / "out.csv")
    assert [r["status"] for r in rows] == ["error:expected 3 fields; got 4", "ok"]  # as a CSV line with one too many
    assert rows[0]["聊天内容"] == "好的谢谢 备注：已退款" and rows[0]["label"] == ""  # kept, not labelled
    assert summary.labelled == 1


def test_empty_and_header_only_files(tmp_path, model):
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(TableError, match="empty"):
        label_table(tmp_path / "empty.csv", tmp_path / "o.csv", model)
    (tmp_path / "header.csv").write_text("id,内容\n", encoding="utf-8")
    summary = run(model, tmp_path / "header.csv", tmp_path / "o.csv")
    assert summary.rows_read == 0 and read_csv(tmp_path / "o.csv") == []
    assert (tmp_path / "o.csv").read_text("utf-8-sig").startswith("id,内容,label")


def test_output_folder_must_exist(tmp_path, model):
    src = write_csv(tmp_path / "in.csv", ["内容"], [["x"]])
    with pytest.raises(TableError, match="does not exist"):
        label_table(src, tmp_path / "no" / "o.csv", model)


def test_several_processes_give_the_same_output(tmp_path, model):
    rows = [[str(i), text] for i, text in enumerate(["还没发货", "好的", "坏了", "", "快递丢了"] * 40)]
    src = write_csv(tmp_path / "in.csv", ["id", "内容"], rows)
    run(model, src, tmp_path / "one.csv", jobs=1, chunk_size=7)
    run(model, src, tmp_path / "two.csv", jobs=2, chunk_size=7)
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()
    assert [r["id"] for r in read_csv(tmp_path / "two.csv")] == [r[0] for r in rows]


def test_max_chars_marks_truncated(tmp_path, model):
    src = write_csv(tmp_path / "in.csv", ["内容"], [["还没发货" * 100], ["好"]])
    run(model, src, tmp_path / "o.csv", max_chars=50)
    assert [r["status"] for r in read_csv(tmp_path / "o.csv")] == ["truncated", "ok"]


def test_damaged_and_truncated_row_shows_both(tmp_path, model):
    src = tmp_path / "in.csv"
    src.write_bytes("内容\n".encode() + ("还没发货" * 100).encode() + b"\xff\n" + "好".encode() + b"\xff\n"
                    + ("还没发货" * 100 + "\n").encode())
    summary = run(model, src, tmp_path / "o.csv", max_chars=50, encoding="utf-8")
    assert [r["status"] for r in read_csv(tmp_path / "o.csv")] == ["truncated_decoding_errors", "ok_decoding_errors",
                                                                   "truncated"]
    assert (summary.labelled, summary.truncated, summary.damaged) == (3, 2, 2)


def test_redact(tmp_path, model):
    src = write_csv(tmp_path / "in.csv", ["内容"], [["收件人：王小明 电话13812345678 还没发货"]])
    run(model, src, tmp_path / "o.csv", redact=True)
    text = read_csv(tmp_path / "o.csv")[0]["内容"]
    assert "13812345678" not in text and "王小明" not in text and "还没发货" in text


def test_report(tmp_path, model):
    from classifier.report import write_report

    src = tmp_path / "chat.csv"
    src.write_text("会话ID,发送方,时间,聊天内容\n" + "".join(",".join(r) + "\n" for r in CHAT)
                   + 's4,买家,2026-11-04 10:00,"没有闭合\ns5,买家\n', encoding="utf-8")
    summary = run(model, src, tmp_path / "out.csv", by_conversation=True, conversation_output=tmp_path / "c.csv")
    write_report(summary, tmp_path / "r.html", title="chat.csv")
    page = (tmp_path / "r.html").read_text("utf-8")
    assert "<svg" in page and "需人工复核" in page and "纠纷" in page
    assert "非买家消息（卖家、系统）</td><td>2" in page and "空消息</td><td>1" in page
    assert "无法解析的行（引号不配对、列数不对等）</td><td>2" in page  # two kinds of error: one line
    assert "按会话" in page and "个会话" in page and "not_buyer" not in page
    write_report(summary, tmp_path / "r.md")
    text = (tmp_path / "r.md").read_text("utf-8")
    assert (tmp_path / "r.svg").exists() and "r.svg" in text and "| 非买家消息（卖家、系统） | 2 |" in text


SCRIPT = Path(sys.executable).parent / "complaint-classifier"
INTERRUPTED = re.compile(r"interrupted after (\d+) rows; nothing written to (.+)")


@pytest.fixture(scope="module")
def big_export(tmp_path_factory):
    """A chat export that takes a few seconds to label on two processes (no text repeats)."""
    rows = [[f"s{i // 4}", "卖家" if i % 4 == 1 else "买家", "2026-11-01 10:00", f"第{i}条 拍了五天了还不发货"]
            for i in range(120_000)]
    return write_csv(tmp_path_factory.mktemp("big") / "big.csv", HEADER, rows)


def start_label(src, out):
    """``label SRC -o OUT --jobs 2 -q`` as a user runs it, returned once its output is growing."""
    proc = subprocess.Popen([str(SCRIPT), "label", str(src), "-o", str(out), "--jobs", "2", "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=sigint_default)
    deadline = time.monotonic() + 60
    while sum(p.stat().st_size for p in out.parent.glob(f".{out.name}.*.part")) < 4 << 20:  # two chunks or more
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it was under way"
        time.sleep(0.02)
    return proc


def sigint_default() -> None:
    """In the child: SIGINT as in a terminal, even under a shell that runs the tests in the background."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] == "Z"
    except FileNotFoundError:
        return True


def stop(proc, how) -> tuple[float, str]:
    """Do ``how`` to a running ``label``; the seconds it took to exit, and its stderr."""
    started = time.monotonic()
    how(proc)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("label did not exit within 30 s")
    return time.monotonic() - started, err.decode("utf-8", "replace")


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("attempt", range(3))
def test_stop_signal_ends_a_parallel_run_cleanly(tmp_path, big_export, signum, code, attempt):
    out = tmp_path / "out.csv"
    proc = start_label(big_export, out)
    workers = children(proc.pid)
    assert len(workers) == 2
    time.sleep(0.3 * attempt)
    seconds, err = stop(proc, lambda p: p.send_signal(signum))
    assert proc.returncode == code and seconds < 5, (proc.returncode, seconds, err)
    (line,) = err.splitlines()
    match = INTERRUPTED.fullmatch(line)
    assert match and 0 < int(match[1]) < 120_000 and match[2] == str(out), err
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file
    assert all(gone(pid) for pid in workers)


def test_killed_worker_ends_the_run_with_an_error(tmp_path, big_export):
    out = tmp_path / "out.csv"
    proc = start_label(big_export, out)
    worker = children(proc.pid)[0]
    seconds, err = stop(proc, lambda p: os.kill(worker, signal.SIGKILL))
    assert proc.returncode == 1 and seconds < 5, (proc.returncode, seconds, err)
    (line,) = err.splitlines()
    assert line.startswith("complaint-classifier: error: a worker process ended unexpectedly (killed by SIGKILL)")
    assert line.endswith(f"rows; nothing written to {out}")
    assert list(tmp_path.iterdir()) == []


def test_stop_signal_ends_a_run_whose_worker_hangs(tmp_path, big_export):
    out = tmp_path / "out.csv"
    proc = start_label(big_export, out)
    workers = children(proc.pid)
    os.kill(workers[0], signal.SIGSTOP)  # a worker that never answers, nor acts on SIGTERM
    seconds, err = stop(proc, lambda p: p.send_signal(signal.SIGINT))
    assert proc.returncode == 130 and seconds < 5, (proc.returncode, seconds, err)
    assert INTERRUPTED.fullmatch(err.strip()) and list(tmp_path.iterdir()) == []
    assert all(gone(pid) for pid in workers)


def test_killed_run_leaves_no_output_and_no_worker(tmp_path, big_export):
    out = tmp_path / "out.csv"
    proc = start_label(big_export, out)
    workers = children(proc.pid)
    stop(proc, lambda p: p.kill())
    assert not out.exists()
    deadline = time.monotonic() + 5
    while not all(gone(pid) for pid in workers):  # they find the main process's end of their pipes closed
        assert time.monotonic() < deadline, "a worker outlived the killed main process"
        time.sleep(0.05)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_an_interrupt_while_the_output_is_saved_leaves_no_file(tmp_path, model, monkeypatch, fmt):
    from classifier import tabular

    def interrupted(self):
        raise KeyboardInterrupt

    src = write_csv(tmp_path / "chat.csv", HEADER, CHAT)
    monkeypatch.setattr(tabular.TableWriter, "_finish", interrupted)
    with pytest.raises(KeyboardInterrupt):
        label_table(src, tmp_path / f"out.{fmt}", model, jobs=1, by_conversation=True,
                    conversation_output=tmp_path / f"conv.{fmt}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chat.csv"]  # no output, no conversations, no .part
