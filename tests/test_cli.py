"""The command line through its real entry point: output, files and exit codes."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from classifier import knowledge
from classifier.cli import main
from conftest import read_csv, write_csv


def run(*args, stdin=None):
    """Run the installed console script, as a user would."""
    script = Path(sys.executable).parent / "complaint-classifier"
    return subprocess.run([str(script), *args], input=stdin, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONIOENCODING": "utf-8"})


def test_console_script_predict_human_output():
    result = run("predict", "亲，拍了三天了还不发货，什么情况")
    assert result.returncode == 0, result.stderr
    assert "标签：" in result.stdout and "处理建议" in result.stdout and "规则：" in result.stdout
    candidates = result.stdout.split("候选：")[1].split("\n")[0]
    assert "延迟发货" in candidates and not re.search(r"[a-z]{3}", candidates)  # Chinese names, not ids


def test_python_dash_m_is_the_same_command():
    result = subprocess.run([sys.executable, "-m", "classifier", "rules", "fraud"], capture_output=True, text=True)
    assert result.returncode == 0 and "第六十九条" in result.stdout


def test_predict_json_one_object_per_message(capsys):
    assert main(["predict", "--json", "在吗", "衣服洗了一次就掉色"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        record = json.loads(line)
        assert record["label"] in knowledge.labels()
        assert abs(sum(t["probability"] for t in record["top"]) - 1) < 0.2
        assert {"needs_review", "top_terms", "rule", "advice", "complaint_deadline"} <= set(record)


def test_predict_reads_stdin_with_dash_one_record_per_line():
    result = run("predict", "--json", "-", stdin="好的\n\n还没发货\n  \n")
    assert result.returncode == 0
    records = [json.loads(x) for x in result.stdout.splitlines()]
    assert [r["text"] for r in records] == ["好的", "", "还没发货", "  "]
    assert [r["status"] for r in records] == ["ok", "empty", "ok", "empty"]
    assert records[1]["label"] == "" and not records[1]["needs_review"] and not records[1]["is_dispute"]


def test_predict_deadline_flag(capsys):
    main(["predict", "--json", "--trade-closed-date", "2026-11-20", "--today", "2026-11-26", "拍了五天了还不发货"])
    record = json.loads(capsys.readouterr().out)
    assert record["label"] == "late_shipment"  # article 85: 15 days after the trade closed
    assert record["last_day"] == "2026-12-05" and record["complaint_open"] is True
    assert "2026-12-05" in record["complaint_deadline"]


def test_label_csv_keeps_every_row_and_column(tmp_path):
    src = write_csv(tmp_path / "in.csv", ["id", "内容"], [["1", "还没发货"], ["2", ""], ["3", "好的"]])
    out = tmp_path / "out.csv"
    assert main(["label", str(src), "-o", str(out), "--jobs", "1"]) == 0
    rows = read_csv(out)
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert [r["status"] for r in rows] == ["ok", "empty", "ok"]
    assert rows[1]["label"] == "" and rows[0]["label"] in knowledge.labels()
    assert {"label", "label_name", "confidence", "needs_review", "rule", "advice"} <= set(rows[0])
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # UTF-8 BOM for Excel


def test_label_jsonl(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"message": "包裹丢了", "n": 1}\n{"message": "谢谢", "n": 2}\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["label", str(src), "-o", str(out), "--jobs", "1"]) == 0
    rows = [json.loads(x) for x in out.read_text("utf-8").splitlines()]
    assert [r["n"] for r in rows] == ["1", "2"] and all(r["status"] == "ok" for r in rows)


def test_missing_column_lists_the_columns(tmp_path, capsys):
    src = write_csv(tmp_path / "in.csv", ["id", "foo"], [["1", "x"]])
    assert main(["label", str(src), "-o", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert "id" in err and "foo" in err and "Traceback" not in err
    assert main(["label", str(src), "-o", str(tmp_path / "o.csv"), "--text-column", "bar"]) == 2
    assert "'bar' not found" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def test_unreadable_and_missing_inputs(tmp_path, capsys):
    assert main(["label", str(tmp_path / "none.csv"), "-o", str(tmp_path / "o.csv")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["label", str(tmp_path), "-o", str(tmp_path / "o.csv")]) == 2
    assert "folder" in capsys.readouterr().err
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    assert main(["label", str(tmp_path / "x.pdf"), "-o", str(tmp_path / "o.csv")]) == 2
    assert "format" in capsys.readouterr().err


def test_model_errors(tmp_path, small_model_path, capsys):
    assert main(["predict", "--model", str(tmp_path / "nope.npz"), "x"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["predict", "--model", str(small_model_path), "x"]) == 2
    assert "--trust" in capsys.readouterr().err
    assert main(["predict", "--model", str(small_model_path), "--trust", "还没发货"]) == 0


def test_model_for_another_label_set(tmp_path, small_model_path, capsys):
    import shutil

    copy = tmp_path / "other.npz"
    shutil.copy(small_model_path, copy)
    meta = json.loads(small_model_path.with_suffix(".json").read_text())
    meta["label_set"] = ["a", "b"]
    copy.with_suffix(".json").write_text(json.dumps(meta))
    assert main(["predict", "--model", str(copy), "--trust", "x"]) == 2
    assert "another label set" in capsys.readouterr().err


def test_rules_info_evaluate(tmp_path, capsys):
    assert main(["rules"]) == 0
    out = capsys.readouterr().out
    assert all(label in out for label in knowledge.labels())
    assert main(["rules", "nope"]) == 2
    assert main(["info"]) == 0
    assert "sha256" in capsys.readouterr().out
    data = write_csv(tmp_path / "gold.csv", ["text", "label"],
                     [["还没发货呢 都五天了", "late_shipment"], ["好的谢谢", "other"], ["快递丢了", "logistics"]])
    assert main(["evaluate", str(data), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 3 and result["macro_f1"] is None and 0 <= result["macro_f1_all"] <= 1  # no label has 5 items
    assert len(result["confusion"]) == len(result["labels"])


def test_train_small_and_deterministic(tmp_path):
    from conftest import FIXTURES

    outputs = []
    for name in ("a.npz", "b.npz"):
        out = tmp_path / name
        assert main(["train", "--data", str(FIXTURES / "train_small.csv"), "-o", str(out), "--cv-folds", "2"]) == 0
        outputs.append(out)
    meta = [json.loads(p.with_suffix(".json").read_text()) for p in outputs]
    assert meta[0]["training_data_sha256"] == meta[1]["training_data_sha256"]
    assert meta[0]["model_sha256"] == meta[1]["model_sha256"]
    assert meta[0]["counts_per_label"]["late_shipment"] == 8
    assert "cross_validation" in meta[0]


def test_train_with_reviewed_extra(tmp_path, capsys):
    from conftest import FIXTURES

    reviewed = write_csv(tmp_path / "reviewed.csv", ["text", "label", "correct_label"],
                         [["快递员把东西扔门口就走了", "other", "logistics"], ["好", "other", ""]])
    out = tmp_path / "m.npz"
    assert main(["train", "--data", str(FIXTURES / "train_small.csv"), "--extra", str(reviewed),
                 "-o", str(out), "--cv-folds", "0"]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["reviewed_added"][0]["rows"] == 1 and meta["training_rows"] == 33
    bad = write_csv(tmp_path / "bad.csv", ["text", "correct_label"], [["x", "nonsense"]])
    assert main(["train", "--data", str(FIXTURES / "train_small.csv"), "--extra", str(bad),
                 "-o", str(out), "--cv-folds", "0", "--force"]) == 2
    assert "nonsense" in capsys.readouterr().err


def test_train_never_replaces_a_model_unasked(tmp_path, capsys):
    from conftest import FIXTURES

    out = tmp_path / "m.npz"
    out.write_bytes(b"an existing model")
    assert main(["train", "--data", str(FIXTURES / "train_small.csv"), "-o", str(out), "--cv-folds", "0"]) == 2
    assert "--force" in capsys.readouterr().err and out.read_bytes() == b"an existing model"
    assert main(["train", "--data", str(FIXTURES / "train_small.csv"), "-o", str(tmp_path / "no" / "m.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err  # checked before any training


def test_train_without_cv_keeps_the_documented_thresholds(tmp_path, capsys):
    from conftest import FIXTURES

    out = tmp_path / "m.npz"
    assert main(["train", "--data", str(FIXTURES / "train_small.csv"), "-o", str(out), "--cv-folds", "0"]) == 0
    assert "thresholds keep their defaults" in capsys.readouterr().err
    params = json.loads(out.with_suffix(".json").read_text())["params"]
    assert params["review_threshold"] == 0.8 and params["dispute_threshold"] == 0.5


def test_predict_without_text_on_a_terminal_is_an_error(monkeypatch, capsys):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    assert main(["predict"]) == 2
    assert "give a message" in capsys.readouterr().err


def test_predict_reads_a_stdin_that_is_not_a_terminal_stream(monkeypatch, capsys):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("还没发货\n\n"))
    assert main(["predict", "--json", "-"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["status"] for r in records] == ["ok", "empty"]
