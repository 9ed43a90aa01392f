"""What a new user hit (issue 11): one test per defect, through the real entry points."""
import json
import os
import stat

import pytest

from classifier import knowledge
from classifier.cli import build_parser, main
from conftest import FIXTURES, read_csv, write_csv


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_outputs_follow_the_umask(tmp_path, capsys, umask, mode):
    src = write_csv(tmp_path / "in.csv", ["内容"], [["还没发货"]])
    old = os.umask(umask)
    try:
        assert run(capsys, "label", src, "-o", tmp_path / "out.csv", "-q", "--jobs", "1",
                   "--report", tmp_path / "r.html")[0] == 0
        assert run(capsys, "train", "--data", FIXTURES / "train_small.csv", "-o", tmp_path / "m.npz",
                   "--cv-folds", "0")[0] == 0
    finally:
        os.umask(old)
    for name in ("out.csv", "r.html", "m.npz", "m.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_xlsx_to_stdout_is_refused_before_any_work(tmp_path, capsys):
    src = write_csv(tmp_path / "in.csv", ["内容"], [["还没发货"]])
    code, out, err = run(capsys, "label", src, "-o", "-", "--format", "xlsx")
    assert code == 2 and "cannot be written to stdout" in err and out == ""


@pytest.mark.parametrize("args, message", [
    (["-o", "{src}"], "is the input file"),
    (["-o", "{tmp}/out.txt"], "cannot tell the format"),
    (["-o", "{tmp}/out.csv", "--report", "{tmp}/r.pdf"], "use a .html or .md"),
    (["-o", "{tmp}/out.csv", "--by-conversation", "--conversations", "{tmp}/out.csv"], "name the same file"),
    (["-o", "{tmp}/out.csv", "--report", "{tmp}/out.html", "--conversations", "{tmp}/out.html",
      "--by-conversation"], "name the same file"),
    (["-o", "{tmp}/out.csv", "--report", "{tmp}/r.md", "--by-conversation", "--conversations", "{tmp}/r.svg"],
     "name the same file"),
], ids=["same file", "unknown output extension", "unknown report extension", "conversations = output",
        "conversations = report", "conversations = the report's chart"])
def test_outputs_that_would_go_wrong_are_refused(tmp_path, capsys, args, message):
    src = write_csv(tmp_path / "in.csv", ["内容"], [["还没发货"]])
    before = src.read_bytes()
    code, _, err = run(capsys, "label", src, *[a.format(src=src, tmp=tmp_path) for a in args])
    assert code == 2 and message in err
    assert src.read_bytes() == before and not (tmp_path / "out.csv").exists()


def test_no_sender_column_is_said_and_nicknames_are_understood(tmp_path, capsys):
    src = write_csv(tmp_path / "in.csv", ["内容"], [["还没发货"]])
    code, _, err = run(capsys, "label", src, "-o", tmp_path / "o.csv", "--jobs", "1")
    assert code == 0 and "no sender column found" in err and "treated as buyer 1" in err

    rows = [["c1", "小王爱购物", "拍了五天了还不发货"], ["c1", "某某旗舰店:小美", "亲，我们这边都是正品保证的"],
            ["c1", "小王爱购物", "好的"], ["c2", "tb123456", "是正品吗"]]
    src = write_csv(tmp_path / "qn.csv", ["会话ID", "发送人", "聊天内容"], rows)
    code, _, err = run(capsys, "label", src, "-o", tmp_path / "qn_out.csv", "--jobs", "1")
    assert code == 0 and "holds names, not roles" in err
    assert [r["status"] for r in read_csv(tmp_path / "qn_out.csv")] == ["ok", "not_buyer", "ok", "ok"]
    code, _, err = run(capsys, "label", src, "-o", tmp_path / "qn2.csv", "--jobs", "1", "--seller-value", "tb123456")
    assert [r["status"] for r in read_csv(tmp_path / "qn2.csv")] == ["ok", "ok", "ok", "not_buyer"]


def test_predict_output_has_no_jargon_or_repeats(capsys):
    code, out, _ = run(capsys, "predict", "衣服洗了一次就掉色了", "拍了五天了还不发货")
    assert code == 0
    assert "来源未规定" not in out and "本项目" not in out and "len" not in out.split("依据词")[1].split("\n")[0]
    assert "投诉期限：投诉期限" not in out and "medium" not in out and "严重程度：中" in out
    code, out, _ = run(capsys, "rules", "counterfeit")
    assert out.count("第八十五条没有单列") == 1


def test_predict_shows_truncation_and_empty(capsys):
    code, out, _ = run(capsys, "predict", "快递三天了还没到，" * 300, "  ")
    assert code == 0 and "只用了前 2000 字" in out and "空消息" in out


def test_rules_accept_chinese_names(capsys):
    code, out, _ = run(capsys, "rules", "延迟发货")
    assert code == 0 and out.startswith("late_shipment")


@pytest.mark.parametrize("date", ["2026-11-20", "2026/11/20", "20261120"])
def test_dates_in_three_spellings(capsys, date):
    code, out, _ = run(capsys, "predict", "--json", "--trade-closed-date", date, "--today", "2026-11-25", "拍了五天了还不发货")
    record = json.loads(out)
    assert code == 0 and record["label"] == "late_shipment" and record["last_day"] == "2026-12-05"


def test_thresholds_out_of_range_are_refused(capsys):
    for command in (["predict", "--threshold", "1.5", "x"], ["label", "in.csv", "-o", "o.csv", "--threshold", "-0.1"]):
        with pytest.raises(SystemExit) as exit_info:
            main(command)
        assert exit_info.value.code == 2
        assert "0 到 1" in capsys.readouterr().err


def test_label_threshold_controls_needs_review(tmp_path, capsys):
    src = write_csv(tmp_path / "in.csv", ["内容"], [["拍了五天了还不发货"], ["好的谢谢"]])
    run(capsys, "label", src, "-o", tmp_path / "strict.csv", "-q", "--jobs", "1", "--threshold", "1")
    assert {r["needs_review"] for r in read_csv(tmp_path / "strict.csv")} == {"true"}


def test_help_is_chinese_and_documents_every_flag(capsys):
    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices
    for name, sub in subcommands.items():
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings} has no help"
    for name in subcommands:
        with pytest.raises(SystemExit):
            main([name, "--help"])
        shown = capsys.readouterr().out
        assert shown.startswith(f"用法：complaint-classifier {name} ") and "选项" in shown
        assert not [phrase for phrase in ("usage:", "options:", "positional arguments", "show this help")
                    if phrase in shown]
    with pytest.raises(SystemExit):
        main(["label", "--help"])
    assert "输出文件" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and "complaint-classifier 0." in capsys.readouterr().out


def test_xlsx_output_types_layout_and_sheet_name(tmp_path, capsys):
    from openpyxl import Workbook, load_workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "聊天记录"
    sheet.append(["2026年11月 买家消息导出"])  # a title row above the header
    sheet.merge_cells("A1:C1")
    sheet.append(["会话ID", "发送方", "聊天内容"])
    sheet.append(["c1", "买家", "拍了五天了还不发货"])
    sheet.append(["c1", "客服", "亲，马上发"])
    book.save(tmp_path / "in.xlsx")
    code, _, err = run(capsys, "label", tmp_path / "in.xlsx", "-o", tmp_path / "out.xlsx", "--jobs", "1")
    assert code == 0, err
    out = load_workbook(tmp_path / "out.xlsx").active
    assert out.title == "聊天记录" and out.freeze_panes == "A2" and out.auto_filter.ref
    header = [c.value for c in out[1]]
    first = dict(zip(header, [c.value for c in out[2]]))
    assert first["聊天内容"] == "拍了五天了还不发货" and isinstance(first["confidence"], (int, float))
    assert first["needs_review"] in (True, False) and first["is_dispute"] is True
    assert out.column_dimensions["C"].width > 10
    code, _, _ = run(capsys, "label", tmp_path / "in.xlsx", "-o", tmp_path / "o2.csv", "--header-row", "2", "-q")
    assert code == 0 and len(read_csv(tmp_path / "o2.csv")) == 2


def test_jsonl_output_has_numbers_and_booleans(tmp_path, capsys):
    src = write_csv(tmp_path / "in.csv", ["内容"], [["拍了五天了还不发货"], [""]])
    run(capsys, "label", src, "-o", tmp_path / "out.jsonl", "-q", "--jobs", "1")
    first, empty = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text("utf-8").splitlines()]
    assert isinstance(first["confidence"], float) and first["is_dispute"] is True and first["needs_review"] in (True, False)
    assert empty["confidence"] is None and empty["status"] == "empty"


def test_evaluate_reads_what_label_reads(tmp_path, capsys):
    from openpyxl import Workbook

    rows = [["还没发货呢 都五天了", "late_shipment"], ["好的谢谢", "other"], ["快递丢了", ""]]
    write_csv(tmp_path / "gold.csv", ["聊天内容", "correct_label"], rows)
    code, out, _ = run(capsys, "evaluate", tmp_path / "gold.csv")
    assert code == 0 and out.startswith("macro-F1") and "1 rows without a label skipped" in out
    book = Workbook()
    book.active.append(["内容", "correct_label"])
    for row in rows:
        book.active.append(row)
    book.save(tmp_path / "gold.xlsx")
    code, out, _ = run(capsys, "evaluate", tmp_path / "gold.xlsx", "--json")
    assert code == 0 and json.loads(out)["n"] == 2


def test_headline_figure_is_defined_once(capsys, tmp_path):
    rows = [[f"还没发货呢 都{i}天了", "late_shipment"] for i in range(5)] + [["好的谢谢", "other"]]
    write_csv(tmp_path / "gold.csv", ["text", "label"], rows)
    code, out, _ = run(capsys, "evaluate", tmp_path / "gold.csv", "--json")
    result = json.loads(out)
    assert result["labels_scored"] == 1  # only late_shipment has >= 5 gold items
    assert result["macro_f1"] == result["per_label"]["late_shipment"]["f1"]
    assert set(knowledge.labels()) >= set(result["per_label"])


def test_evaluate_on_a_label_output_uses_the_input_gold_not_the_model_guess(tmp_path, capsys):
    rows = [["还没发货呢 都五天了", "other"], ["好的谢谢", "late_shipment"]]  # gold deliberately opposite
    src = write_csv(tmp_path / "gold.csv", ["text", "label"], rows)
    assert run(capsys, "label", src, "-o", tmp_path / "out.csv", "-q", "--jobs", "1")[0] == 0
    code, out, _ = run(capsys, "evaluate", tmp_path / "out.csv", "--json")
    result = json.loads(out)
    assert code == 0 and result["label_column"] == "input_label" and result["accuracy"] == 0.0
    write_csv(tmp_path / "bare.csv", ["text"], [["好的谢谢"]])
    assert run(capsys, "label", tmp_path / "bare.csv", "-o", tmp_path / "bare_out.csv", "-q", "--jobs", "1")[0] == 0
    code, _, err = run(capsys, "evaluate", tmp_path / "bare_out.csv")
    assert code == 2 and "model's guess" in err


def test_train_finds_the_project_data_from_another_folder(tmp_path, monkeypatch):
    from pathlib import Path

    from classifier.training import DataError, default_data_paths, load_corpus

    project = Path(__file__).resolve().parents[1] / "data"
    monkeypatch.chdir(tmp_path)
    assert default_data_paths() == [project / "messages", project / "real"]
    with pytest.raises(DataError, match="no training data"):
        load_corpus([])


def test_common_chinese_text_headers_and_an_exact_name_first(tmp_path, capsys):
    from classifier.tabular import TEXT_COLUMNS, detect_column

    for name in ("聊天记录", "对话内容", "咨询内容", "评论内容", "买家评价", "追评内容", "会话内容", "聊天內容"):
        assert detect_column(["时间", name], TEXT_COLUMNS, "text") == name
    assert detect_column(["Text", "text"], TEXT_COLUMNS, "text") == "text"
    assert detect_column(["Text", "id"], TEXT_COLUMNS, "text") == "Text"


def test_an_unknown_input_extension_names_the_input_flag(tmp_path, capsys):
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    code, _, err = run(capsys, "label", tmp_path / "old.xls", "-o", tmp_path / "o.csv")
    assert code == 2 and "--input-format" in err and "save it as .xlsx" in err


def test_train_refuses_a_sheet_with_nothing_reviewed_and_reads_chinese_names(tmp_path, capsys):
    from classifier.training import load_reviewed

    write_csv(tmp_path / "empty.csv", ["text", "correct_label"], [["还没发货", ""]])
    code, _, err = run(capsys, "train", "--extra", tmp_path / "empty.csv", "-o", tmp_path / "m.npz", "--cv-folds", "0")
    assert code == 2 and "no row has a correct_label" in err and not (tmp_path / "m.npz").exists()
    rows = [["还没发货", "延迟发货"], ["好的", "其他/非纠纷"], ["好评", "其他"], ["假货", "Counterfeit"]]
    write_csv(tmp_path / "named.csv", ["text", "correct_label"], rows)
    assert load_reviewed(tmp_path / "named.csv")["label"].tolist() == ["late_shipment", "other", "other", "counterfeit"]


def test_evaluate_has_no_headline_without_a_label_of_five_items(tmp_path, capsys):
    write_csv(tmp_path / "gold.csv", ["text", "label"], [["还没发货呢 都五天了", "late_shipment"]])
    code, out, _ = run(capsys, "evaluate", tmp_path / "gold.csv")
    assert code == 0 and out.startswith("macro-F1 n/a")
    code, out, _ = run(capsys, "evaluate", tmp_path / "gold.csv", "--json")
    assert json.loads(out)["macro_f1"] is None


def test_the_last_day_of_a_complaint_window_is_said_so(capsys):
    code, out, _ = run(capsys, "predict", "--trade-closed-date", "2026-11-20", "--today", "2026-12-05", "拍了五天了还不发货")
    assert code == 0 and "今天是最后一天，仍可投诉" in out and "还剩0天" not in out
