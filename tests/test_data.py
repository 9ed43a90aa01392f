"""The training corpus passes its rules (data/README.md): run on the real data/messages."""
import csv
from pathlib import Path

import pytest

from classifier import knowledge
from classifier.datacheck import check_corpus, near_duplicates
from classifier.training import DataError, load_corpus
from conftest import SHARED, write_csv

DATA = Path(__file__).resolve().parents[1] / "data" / "messages"


@pytest.fixture(scope="module")
def report():
    corpus = load_corpus([DATA])
    dev = SHARED / "eval" / "dev_real.csv"
    held_out = None
    if dev.exists():
        with open(dev, encoding="utf-8-sig", newline="") as fh:
            held_out = [row["text"] for row in csv.DictReader(fh)]
    return check_corpus(corpus, held_out)


def test_corpus_passes_every_rule(report):
    assert report["problems"] == []


def test_every_label_is_present(report):
    assert set(report["counts"]) == set(knowledge.labels())


def test_no_overlap_with_the_real_dev_set(report):
    if "held_out_exact" not in report:
        pytest.skip("shared/eval/dev_real.csv not present")
    assert report["held_out_exact"] == 0 and report["held_out_near"] == 0


def test_near_duplicate_detection():
    texts = ["拍了三天了还不发货什么情况", "拍了三天了还不发货什么情况啊", "衣服洗了就掉色"]
    assert [(i, j) for i, j, _ in near_duplicates(texts)] == [(0, 1)]
    assert near_duplicates(["衣服洗了就掉色"], ["這件衣服洗了就掉色"], threshold=0.5)


def test_check_corpus_reports_problems(tmp_path):
    path = write_csv(tmp_path / "bad.csv", ["text", "label", "source"],
                     [["好的", "other", "written"], ["好的", "other", "written"], ["坏了", "quality_defect", "augmented"]])
    report = check_corpus(load_corpus([path]))
    problems = "\n".join(report["problems"])
    assert "exact duplicate" in problems and "fewer than 300" in problems and "augmented share" in problems


def test_load_corpus_rejects_bad_rows(tmp_path):
    with pytest.raises(DataError, match="line 3: unknown label 'nope'"):
        load_corpus([write_csv(tmp_path / "a.csv", ["text", "label"], [["好", "other"], ["x", "nope"]])])
    with pytest.raises(DataError, match="empty text"):
        load_corpus([write_csv(tmp_path / "b.csv", ["text", "label"], [[" ", "other"]])])
    with pytest.raises(DataError, match="missing column"):
        load_corpus([write_csv(tmp_path / "c.csv", ["words", "label"], [["x", "other"]])])
    with pytest.raises(DataError, match="not found"):
        load_corpus([tmp_path / "none.csv"])
