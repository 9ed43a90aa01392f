"""The Dask engine on a local cluster of two worker processes: the same rows as the local engine, part by part."""
import datetime as dt
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed")
pytest.importorskip("dask.dataframe")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from classifier import artifact  # noqa: E402
from classifier.batch import label_table  # noqa: E402
from classifier.cli import main  # noqa: E402
from classifier.distributed import ClusterError, find_parts, label_parts  # noqa: E402
from conftest import read_csv  # noqa: E402

HEADER = ["会话ID", "发送方", "时间", "聊天内容"]
BUYER = ["在吗", "拍了五天了还不发货，怎么回事", "衣服洗了一次就掉色", "收到的是假货吧，跟专柜的不一样", "好的谢谢",
         "快递员态度太差了，东西也摔坏了", "=1+1 还没到", "", "我要退款，一直不处理", "发错颜色了，我要的是黑色"]
SELLER = ["亲，在的", "抱歉亲，马上处理", "已经帮您备注了哦"]
BROKEN = ['s900,买家,2026-11-02 10:00:00,"这一行的引号没有关上', "s901,买家,2026-11-02 10:01:00,多了,两列,出来"]


def chat(n: int, start: int = 0) -> list[list[str]]:
    """Rows of 7-turn conversations: a conversation crosses the boundary of parts of 120 rows."""
    rows = []
    for i in range(start, start + n):
        buyer = i % 3 != 1
        text = BUYER[(i * 7) % len(BUYER)] if buyer else SELLER[i % len(SELLER)]
        when = dt.datetime(2026, 11, 1) + dt.timedelta(minutes=i)
        rows.append([f"s{i // 7:04d}", "买家" if buyer else "客服", f"{when:%Y-%m-%d %H:%M:%S}", text])
    return rows


def write_lines(path: Path, header: list[str], lines: list[str]) -> Path:
    path.write_text("\n".join([",".join(header)] + lines) + "\n", encoding="utf-8")
    return path


def csv_lines(rows: list[list[str]]) -> list[str]:
    return [",".join(row) for row in rows]


@pytest.fixture(scope="module")
def scheduler():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="1GiB",
                      dashboard_address=":0", silence_logs=logging.CRITICAL) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def model():
    return artifact.load()


@pytest.fixture
def parts(tmp_path):
    """Three CSV parts (the second with two broken lines) and the same rows in one file."""
    folder = tmp_path / "parts"
    folder.mkdir()
    bodies = [csv_lines(chat(120, 0)), csv_lines(chat(60, 120))[:30] + BROKEN + csv_lines(chat(60, 120))[30:],
              csv_lines(chat(100, 180))]
    for k, body in enumerate(bodies):
        write_lines(folder / f"part-{k}.csv", HEADER, body)
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-9.csv.crc").write_text("")
    whole = write_lines(tmp_path / "whole.csv", HEADER, [line for body in bodies for line in body])
    return folder, whole, [len(body) for body in bodies]


def test_parts_equal_the_single_machine_run_row_for_row(tmp_path, parts, scheduler, model):
    folder, whole, sizes = parts
    label_table(whole, tmp_path / "whole_out.csv", model, jobs=1, by_conversation=True,
                conversation_output=tmp_path / "whole_conversations.csv")
    manifest = label_parts(str(folder), str(tmp_path / "out"), scheduler=scheduler, by_conversation=True,
                           chunk_size=50)

    single = read_csv(tmp_path / "whole_out.csv")
    names = ["part-0.csv", "part-1.csv", "part-2.csv"]
    dask = [row for name in names for row in read_csv(tmp_path / "out" / name)]
    assert dask == single  # every column: labels, probabilities, statuses, rule, advice; in order
    assert [row["status"] for row in dask].count("error:unbalanced quote") == 1
    assert any(row["status"].startswith("error:expected 4 fields") for row in dask)

    assert [p["input"] for p in manifest["parts"]] == names and manifest["failed"] == []
    assert [p["rows_read"] for p in manifest["parts"]] == sizes and manifest["rows_read"] == sum(sizes)
    for part, name in zip(manifest["parts"], names):
        statuses = [row["status"] for row in read_csv(tmp_path / "out" / name)]
        assert part["statuses"] == {s: statuses.count(s) for s in set(statuses)}
    assert manifest["model"]["sha256"] == artifact.sha256(artifact.default_model_path())
    assert json.loads((tmp_path / "out" / "_manifest.json").read_text("utf-8")) == manifest

    # conversations, pooled across parts: the same labels as the single run; the driving line is in its part
    expected = {row["conversation_id"]: row for row in read_csv(tmp_path / "whole_conversations.csv")}
    pooled = {}
    for path in sorted((tmp_path / "out" / "_conversations").glob("part-*.csv")):
        pooled.update((row["conversation_id"], row) for row in read_csv(path))
    assert pooled.keys() == expected.keys() and "s0017" in pooled  # s0017 spans part-0 and part-1
    starts = {"part-0.csv": 0, "part-1.csv": sizes[0], "part-2.csv": sizes[0] + sizes[1]}
    for key, row in pooled.items():
        part, line = row.pop("driving_part"), int(row.pop("driving_line"))
        want = dict(expected[key])
        assert int(want.pop("driving_line")) == starts[part] + line
        assert row == want
    assert manifest["conversations"]["messages"] == manifest["labelled"]


def test_a_part_that_fails_for_good_is_reported_and_the_others_are_written(tmp_path, parts, scheduler, capsys):
    folder, _, sizes = parts
    (folder / "part-3.parquet").write_bytes(b"PAR1 this is not a parquet file")
    out = tmp_path / "out"
    code = main(["label", str(folder), "-o", str(out), "--engine", "dask", "--scheduler", scheduler])
    err = capsys.readouterr().err
    assert code == 1
    assert "part part-3.parquet failed: cannot read" in err and "Traceback" not in err
    manifest = json.loads((out / "_manifest.json").read_text("utf-8"))
    assert [f["input"] for f in manifest["failed"]] == ["part-3.parquet"]
    assert "cannot read" in manifest["failed"][0]["error"] and manifest["rows_read"] == sum(sizes)
    assert sorted(p.name for p in out.iterdir()) == ["_manifest.json", "part-0.csv", "part-1.csv", "part-2.csv"]


def test_a_model_missing_on_the_workers_is_one_clear_error(tmp_path, parts, scheduler, capsys):
    folder, _, _ = parts
    missing = tmp_path / "elsewhere" / "model.npz"
    code = main(["label", str(folder), "-o", str(tmp_path / "out"), "--engine", "dask", "--scheduler", scheduler,
                 "--model", str(missing), "--trust"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("complaint-classifier: error: the model cannot be loaded on 2 of 2 worker(s)")
    assert f"model file not found: {missing}" in err[-1]
    assert not any("Traceback" in line for line in err)
    assert not list((tmp_path / "out").glob("part-*"))


def test_parquet_parts_in_and_out_keep_their_types(tmp_path, scheduler, model):
    folder = tmp_path / "parts"
    folder.mkdir()
    tables = []
    for k in range(2):
        rows = chat(90, 90 * k)
        table = pa.table({"会话ID": [r[0] for r in rows], "发送方": [r[1] for r in rows],
                          "时间": pa.array([dt.datetime.fromisoformat(r[2]) for r in rows], pa.timestamp("us")),
                          "聊天内容": [r[3] for r in rows], "seq": pa.array(range(90 * k, 90 * k + 90), pa.int32())})
        pq.write_table(table, folder / f"part-{k}.parquet", row_group_size=40)
        tables.append(table)
    pq.write_table(pa.concat_tables(tables), tmp_path / "whole.parquet")
    label_table(tmp_path / "whole.parquet", tmp_path / "whole_out.parquet", model, jobs=1)
    manifest = label_parts(str(folder / "*.parquet"), str(tmp_path / "out"), scheduler=scheduler, chunk_size=30)

    assert [p["output"] for p in manifest["parts"]] == ["part-0.parquet", "part-1.parquet"]
    dask = pa.concat_tables([pq.read_table(tmp_path / "out" / f"part-{k}.parquet") for k in range(2)])
    single = pq.read_table(tmp_path / "whole_out.parquet")
    assert dask.schema.field("seq").type == pa.int32() and dask.schema.field("时间").type == pa.timestamp("us")
    assert dask.schema.field("confidence").type == pa.float64()
    assert dask.to_pylist() == single.to_pylist()

    manifest = label_parts(str(folder), str(tmp_path / "as_csv"), scheduler=scheduler, output_format="csv")
    assert sorted(p.name for p in (tmp_path / "as_csv").glob("part-*")) == ["part-0.csv", "part-1.csv"]
    assert sum(len(read_csv(tmp_path / "as_csv" / f"part-{k}.csv")) for k in range(2)) == manifest["rows_read"] == 180


def test_fsspec_urls_in_and_out_and_a_failed_read_is_retried(monkeypatch):
    """A remote file system (here fsspec's in-memory one, so an in-process cluster) is read and written
    through local temporary copies; a read that fails once is retried."""
    import fsspec
    from distributed import LocalCluster
    from fsspec.implementations.memory import MemoryFileSystem

    fs = fsspec.filesystem("memory")
    for k in range(2):
        fs.pipe_file(f"/in/part-{k}.csv", ("\n".join([",".join(HEADER)] + csv_lines(chat(20, 20 * k))) + "\n").encode())
    reads = []

    def flaky_get_file(self, path, local, **kwargs):
        reads.append(path)
        if reads.count("/in/part-1.csv") == 1:
            raise ConnectionResetError("connection reset by peer")
        return original(self, path, local, **kwargs)

    original = MemoryFileSystem.get_file
    monkeypatch.setattr(MemoryFileSystem, "get_file", flaky_get_file)
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0", silence_logs=logging.CRITICAL) as cluster:
        manifest = label_parts("memory://in", "memory://out", scheduler=cluster.scheduler_address, chunk_size=8)
    assert manifest["rows_read"] == 40 and manifest["failed"] == []
    assert reads.count("/in/part-1.csv") == 2
    assert sorted(fs.ls("/out", detail=False)) == ["/out/_manifest.json", "/out/part-0.csv", "/out/part-1.csv"]
    assert fs.cat_file("/out/part-1.csv").decode("utf-8-sig").splitlines()[0].startswith("会话ID,发送方,时间,聊天内容,label")


def test_finding_parts(tmp_path):
    for name in ["b.csv", "a.jsonl", "sub/c.parquet", "_manifest.json", ".hidden.csv", "notes.txt", "out/x.csv"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    parts = find_parts(str(tmp_path), str(tmp_path / "out"), output_format="parquet")
    assert [(p.name, p.output) for p in parts] == [("a.jsonl", "a.parquet"), ("b.csv", "b.parquet"),
                                                   ("sub/c.parquet", "sub/c.parquet")]
    assert [p.name for p in find_parts(str(tmp_path / "*.csv"), str(tmp_path / "elsewhere"))] == ["b.csv"]
    with pytest.raises(ClusterError, match="holds the input parts"):
        find_parts(str(tmp_path), str(tmp_path))
    with pytest.raises(ClusterError, match="would both be written to a.csv"):
        (tmp_path / "a.csv").write_text("")
        find_parts(str(tmp_path), str(tmp_path / "o"), output_format="csv")
    with pytest.raises(ClusterError, match="no parts found"):
        find_parts(str(tmp_path / "*.tsv"), str(tmp_path / "o"))


def test_the_command_starts_a_local_cluster(tmp_path, parts):
    folder, _, sizes = parts
    script = Path(sys.executable).parent / "complaint-classifier"
    result = subprocess.run([str(script), "label", str(folder), "-o", str(tmp_path / "out"), "--engine", "dask",
                             "--jobs", "2", "--format", "jsonl", "--redact"], capture_output=True, text=True,
                            timeout=180, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert result.returncode == 0, result.stderr
    assert "dask: local cluster, 2 worker(s), 3 part(s); dashboard" in result.stderr
    assert "columns: text=聊天内容, role=发送方, conversation=会话ID, time=时间" in result.stderr
    rows = [json.loads(line) for k in range(3) for line in (tmp_path / "out" / f"part-{k}.jsonl").read_text("utf-8").splitlines()]
    assert len(rows) == sum(sizes)


def test_cold_predict_and_the_core_never_import_dask():
    code = ("import sys; from classifier.cli import main; main(['predict', '在吗']); import classifier.batch;"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_usage_errors(tmp_path, parts, capsys):
    folder, _, _ = parts
    for extra, message in [(["-o", "-"], "give an output folder"), (["-o", "x", "--report", "r.html"], "--report"),
                           (["-o", "x", "--scheduler", "tcp://127.0.0.1:1", "--jobs", "2"], "--jobs sets the size")]:
        assert main(["label", str(folder), "--engine", "dask", *extra]) == 2
        assert message in capsys.readouterr().err
    assert main(["label", str(tmp_path / "nothing"), "-o", str(tmp_path / "o"), "--engine", "dask"]) == 2
    assert "no parts found" in capsys.readouterr().err


def test_parts_without_a_text_column_are_one_clear_error(tmp_path, scheduler, capsys):
    write_lines(tmp_path / "a.csv", ["id", "amount"], ["1,2"])
    assert main(["label", str(tmp_path / "a.csv"), "-o", str(tmp_path / "o"), "--engine", "dask",
                 "--scheduler", scheduler]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("complaint-classifier: error: a.csv: no text column found; columns are: id, amount")
    assert not any("Traceback" in line for line in err)


def test_what_the_reader_says_of_a_part_is_in_the_manifest_and_shown(tmp_path, scheduler, capsys):
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "a.csv").write_text("2026年11月 聊天导出\n会话ID,发送方,聊天内容\ns1,买家,还没发货\n", encoding="utf-8")
    code = main(["label", str(folder), "-o", str(tmp_path / "out"), "--engine", "dask", "--scheduler", scheduler])
    err = capsys.readouterr().err
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text("utf-8"))
    assert code == 0 and manifest["parts"][0]["notes"] == ["header found on line 2; 1 line(s) above it skipped"]
    assert "note: a.csv: header found on line 2" in err
