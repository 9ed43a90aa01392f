"""Choosing messages worth labelling: the strategies, and the `sample` command's review sheet."""
import numpy as np
import pytest

from classifier.cli import main
from classifier.sampling import margins, select
from classifier.training import load_reviewed
from conftest import read_csv, write_csv

TEXTS = ["拍了五天了还不发货", "拍了五天了还不发货呢", "好的谢谢", "快递丢了", "衣服掉色了", "", "是正品吗"]
# rows: the model's probabilities over three labels
PROBA = np.array([[0.5, 0.4, 0.1], [0.5, 0.45, 0.05], [0.9, 0.05, 0.05], [0.1, 0.2, 0.7],
                  [0.34, 0.33, 0.33], [0.4, 0.4, 0.2], [0.2, 0.7, 0.1]])


def test_uncertain_takes_the_smallest_margins_first_and_skips_near_copies_and_blanks():
    assert margins(PROBA)[4] == pytest.approx(0.01)
    chosen = select(TEXTS, PROBA, 4, "uncertain")
    assert chosen[0] == 4  # margin 0.01
    assert 5 not in chosen  # blank
    assert not {0, 1} <= set(chosen)  # near-copies: only the less sure is kept
    assert chosen[1] == 1  # margin 0.05


def test_diverse_takes_every_predicted_label_in_turn():
    chosen = select(TEXTS, PROBA, 3, "diverse")
    assert sorted(PROBA[chosen].argmax(axis=1).tolist()) == [0, 1, 2]


def test_random_is_seeded_and_needs_no_model():
    assert select(TEXTS, None, 5, "random", seed=3) == select(TEXTS, None, 5, "random", seed=3)
    everything = select(TEXTS, None, 10, "random")
    assert len(everything) == 5 and 5 not in everything and len({0, 1} & set(everything)) == 1


def test_select_errors():
    with pytest.raises(ValueError, match="unknown strategy"):
        select(TEXTS, PROBA, 2, "clever")
    with pytest.raises(ValueError, match="needs one row of probabilities"):
        select(TEXTS, None, 2, "uncertain")
    assert select(TEXTS, PROBA, 0) == []


def test_sample_command_writes_a_review_sheet_that_train_takes_back(tmp_path, capsys):
    rows = [[str(i), "买家" if i % 3 else "客服", text] for i, text in enumerate(
        ["拍了五天了还不发货", "=HYPERLINK(\"http://x.cn\",\"退款\")", "衣服洗了一次就掉色", "快递三天不动了",
         "好的谢谢", "是正品吗", "亲 在的", "收到货少了一件", "能便宜点吗", "包装破了 杯子碎了"] * 3)]
    src = write_csv(tmp_path / "chat.csv", ["id", "发送方", "聊天内容"], rows)
    sheet = tmp_path / "sheet.csv"
    assert main(["sample", str(src), "-n", "5", "-o", str(sheet), "--strategy", "uncertain"]) == 0
    assert "fill in correct_label" in capsys.readouterr().err
    picked = read_csv(sheet)
    assert len(picked) == 5
    assert list(picked[0]) == ["id", "发送方", "聊天内容", "model_label", "model_label_name", "model_confidence",
                               "correct_label"]
    assert all(r["发送方"] == "买家" and r["correct_label"] == "" for r in picked)
    assert len({r["聊天内容"] for r in picked}) == 5
    raw = sheet.read_text("utf-8-sig")
    assert "\n=HYPERLINK" not in raw and ",=HYPERLINK" not in raw  # never a live formula
    filled = tmp_path / "filled.csv"
    write_csv(filled, list(picked[0]), [list(r.values())[:-1] + ["other"] for r in picked[:2]]
              + [list(r.values()) for r in picked[2:]])
    reviewed = load_reviewed(filled)
    assert len(reviewed) == 2 and set(reviewed["label"]) == {"other"}
    assert set(reviewed["text"]) <= {row[2] for row in rows}


def test_sample_refuses_to_replace_its_input(tmp_path, capsys):
    src = write_csv(tmp_path / "in.csv", ["内容"], [["还没发货"]])
    assert main(["sample", str(src), "-n", "1", "-o", str(src)]) == 2
    assert "is the input file" in capsys.readouterr().err
