"""The training corpus passes its rules (data/README.md): run on the real data/messages."""
import csv
from pathlib import Path

import pytest

from classifier import knowledge
from classifier.datacheck import check_corpus, check_real, near_duplicates
from classifier.training import DataError, load_corpus
from conftest import SHARED, write_csv

DATA = Path(__file__).resolve().parents[1] / "data" / "messages"
REAL = Path(__file__).resolve().parents[1] / "data" / "real"


@pytest.fixture(scope="module")
def report():
    corpus = load_corpus([DATA, REAL])
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


def test_real_data_keeps_both_annotations_and_traces_to_the_pool():
    import pandas as pd

    for path in sorted(REAL.glob("*.csv")):
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        assert check_real(table) == [], path
        pool = SHARED / "real_pool" / "reviews.csv"
        if pool.exists():
            texts = pd.read_csv(pool, dtype=str, keep_default_na=False).set_index("id")["text"]
            assert table["id"].isin(texts.index).all()
            assert (texts.loc[table["id"]].to_numpy() == table["text"].to_numpy()).all()


def test_check_real_finds_inconsistent_rows():
    import pandas as pd

    table = pd.DataFrame({"id": ["rv1", "rv1"], "annotator_a": ["other", "fraud"], "annotator_b": ["fraud", "nope"],
                          "outcome": ["agreed", "maybe"], "label": ["other", ""]})
    problems = "\n".join(check_real(table))
    for expected in ("duplicate pool ids", "unknown annotator_b", "unknown outcome", "'agreed' row", "without a final"):
        assert expected in problems


def test_no_overlap_with_the_real_dev_set(report):
    if "held_out_exact" not in report:
        pytest.skip("shared/eval/dev_real.csv not present")
    assert report["held_out_exact"] == 0 and report["held_out_near"] == 0


def test_the_independent_set_shares_nothing_with_the_training_data():
    import pandas as pd

    corpus = load_corpus([DATA, REAL])
    independent = pd.read_csv(DATA.parent / "independent" / "written.csv", dtype=str, keep_default_na=False)
    assert not independent["text"].str.strip().isin(set(corpus["text"])).any()
    assert near_duplicates(independent["text"].tolist(), corpus["text"].tolist()) == []


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
