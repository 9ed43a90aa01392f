"""Parquet in and out of the single-machine ``label``: every row, in order, with the input's column types."""
import datetime as dt

import pytest

from classifier import artifact
from classifier.batch import LABEL_COLUMNS, label_table
from classifier.tabular import TableWriter, open_table

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

TEXTS = ["拍了五天了还不发货，怎么回事", "亲，在的", "", "=HYPERLINK(\"http://x\")", "衣服洗一次就掉色"]


@pytest.fixture(scope="module")
def model():
    return artifact.load()


def typed_table(n: int):
    return pa.table({
        "会话ID": [f"s{i // 2}" for i in range(n)],
        "发送方": ["客服" if i % 5 == 1 else "买家" for i in range(n)],
        "聊天内容": [TEXTS[i % len(TEXTS)] for i in range(n)],
        "seq": pa.array([i if i % 7 else None for i in range(n)], pa.int64()),
        "amount": pa.array([i / 4 if i % 3 else None for i in range(n)], pa.float32()),
        "paid": pa.array([None if i % 11 == 0 else i % 2 == 0 for i in range(n)], pa.bool_()),
        "时间": pa.array([dt.datetime(2026, 11, 1) + dt.timedelta(seconds=97 * i, microseconds=i) for i in range(n)],
                       pa.timestamp("ms")),
        "day": pa.array([dt.date(2026, 11, 1 + i % 28) for i in range(n)], pa.date32()),
        "tags": pa.array([[i, i + 1] for i in range(n)]),
    })


def test_parquet_in_and_out_keeps_rows_order_and_types(tmp_path, model):
    table = typed_table(300)
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=64)
    summary = label_table(tmp_path / "in.parquet", tmp_path / "out.parquet", model, jobs=1, chunk_size=50)
    summary.check()
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.num_rows == table.num_rows == summary.rows_read
    schema = {field.name: field.type for field in out.schema}
    # numbers, booleans, dates and timestamps keep their type and values; the rest is text
    for name in ("seq", "amount", "paid", "时间", "day"):
        assert schema[name] == table.schema.field(name).type
        assert out.column(name).to_pylist() == table.column(name).to_pylist()
    assert schema["tags"] == pa.string() and out.column("tags")[0].as_py() == "[0, 1]"
    assert out.column("聊天内容").to_pylist() == table.column("聊天内容").to_pylist()
    assert (schema["confidence"], schema["is_dispute"], schema["needs_review"]) == (pa.float64(), pa.bool_(), pa.bool_())
    rows = out.to_pylist()
    assert [r["status"] for r in rows[:5]] == ["ok", "not_buyer", "empty", "ok", "ok"]
    assert rows[1]["confidence"] is None and rows[1]["label"] == "" and 0 < rows[0]["confidence"] <= 1
    assert out.column_names[-len(LABEL_COLUMNS):] == LABEL_COLUMNS


def test_parquet_output_is_written_in_row_groups(tmp_path, model, monkeypatch):
    import classifier.tabular as tabular

    monkeypatch.setattr(tabular, "PARQUET_ROW_GROUP", 100)
    pq.write_table(typed_table(450), tmp_path / "in.parquet", row_group_size=100)
    label_table(tmp_path / "in.parquet", tmp_path / "out.parquet", model, jobs=1, chunk_size=40)
    metadata = pq.ParquetFile(tmp_path / "out.parquet").metadata
    # a row group is written as soon as 100 rows are buffered: three chunks of 40, three times, then the rest
    assert metadata.num_rows == 450
    assert [metadata.row_group(k).num_rows for k in range(metadata.num_row_groups)] == [120, 120, 120, 90]


def test_csv_to_parquet_and_back(tmp_path, model):
    (tmp_path / "in.csv").write_text("内容,编号\n还没发货,007\n好的,008\n", encoding="utf-8")
    label_table(tmp_path / "in.csv", tmp_path / "out.parquet", model, jobs=1)
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column("编号").to_pylist() == ["007", "008"]  # text stays text: leading zeros kept
    label_table(tmp_path / "out.parquet", tmp_path / "again.csv", model, jobs=1)
    reader = open_table(tmp_path / "again.csv")
    assert reader.columns[:4] == ["内容", "编号", "input_label", "input_label_name"]
    assert [row.values[:2] for row in reader.rows] == [["还没发货", "007"], ["好的", "008"]]


def test_empty_parquet_output_has_the_schema(tmp_path):
    with TableWriter(tmp_path / "empty.parquet", ["a", "confidence"], types={"confidence": "float64"}):
        pass
    schema = pq.read_schema(tmp_path / "empty.parquet")
    assert [(f.name, f.type) for f in schema] == [("a", pa.string()), ("confidence", pa.float64())]


def test_strings_that_are_not_utf8_are_marked_not_fatal(tmp_path, model):
    text = pa.array([b"\xed\xa0\xbd " + "假货".encode(), "还没发货".encode()], pa.binary()).view(pa.string())
    pq.write_table(pa.table({"聊天内容": text}), tmp_path / "in.parquet")  # as a tool that checks nothing writes it
    label_table(tmp_path / "in.parquet", tmp_path / "out.parquet", model, jobs=1).check()
    out = pq.read_table(tmp_path / "out.parquet")
    assert out["聊天内容"].to_pylist() == ["\ufffd\ufffd\ufffd 假货", "还没发货"]
    assert out["status"].to_pylist() == ["ok_decoding_errors", "ok"]
