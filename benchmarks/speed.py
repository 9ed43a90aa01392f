"""Speed benchmarks, each measured side by side with its baseline in one run.

    python benchmarks/speed.py cold               # cold `predict` vs `import jieba; jieba.initialize()`
    python benchmarks/speed.py warm               # library API throughput on 10,000 messages
    python benchmarks/speed.py batch --rows 1000000   # `label` on a synthetic export vs bare jieba.lcut
    python benchmarks/speed.py batch --rows 1000000 --encoding gb18030
    python benchmarks/speed.py batch --rows 200000 --unique   # no repeated messages: the cache never hits

Prints a Markdown table row for benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
BIN = Path(sys.executable).parent
CLI = str(BIN / "complaint-classifier")
MESSAGE = "亲，拍了三天了还不发货，什么情况"


def timed(cmd: list[str], **kwargs) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - start


def cold(runs: int) -> None:
    baseline, ours = [], []
    subprocess.run([CLI, "predict", MESSAGE], check=True, capture_output=True)  # warm the OS file cache
    for _ in range(runs):  # interleaved, so both see the same machine load
        baseline.append(timed([sys.executable, "-c", "import jieba; jieba.setLogLevel(30); jieba.initialize()"]))
        ours.append(timed([CLI, "predict", MESSAGE]))
    b, o = statistics.median(baseline), statistics.median(ours)
    print(f"| cold `predict` (median of {runs}) | {o:.3f} s | jieba import + initialize {b:.3f} s | {o / b:.2f}× (target ≤ 1.5×) |")


def buyer_messages(path: Path, encoding: str = "utf-8") -> list[str]:
    with open(path, encoding=encoding, newline="") as fh:
        return [row[3] for row in csv.reader(fh) if row[2] == "买家"]


def export(rows: int, unique: bool = False, encoding: str = "utf-8") -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"export_{rows}{'_unique' if unique else ''}_{encoding}.csv"
    if not path.exists():
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_export.py"), "--rows", str(rows),
                        "--encoding", encoding, "-o", str(path)] + (["--unique"] if unique else []), check=True)
    return path


def warm(n: int) -> None:
    sys.path.insert(0, str(ROOT))
    import classifier

    model = classifier.load_model()
    messages = buyer_messages(export(50_000))[:n]
    model.classify(messages[:100])
    times = []
    for _ in range(3):
        start = time.perf_counter()
        model.predict_proba(messages)
        times.append(time.perf_counter() - start)
    t = statistics.median(times)
    print(f"| warm `predict_proba`, {n:,} messages, 1 process (median of 3) | {n / t:,.0f} msg/s | | |")


def batch(rows: int, jobs: int, unique: bool, encoding: str) -> None:
    path = export(rows, unique, encoding)
    messages = buyer_messages(path, encoding)
    jieba_code = ("import csv,sys,time,jieba; jieba.setLogLevel(30); jieba.initialize();"
                  f"m=[r[3] for r in csv.reader(open({str(path)!r},encoding={encoding!r})) if r[2]=='买家'];"
                  "t=time.perf_counter(); [jieba.lcut(x) for x in m]; print(time.perf_counter()-t)")
    jieba_seconds = float(subprocess.run([sys.executable, "-c", jieba_code], check=True, capture_output=True,
                                         text=True).stdout)
    out = OUT / "labelled.csv"
    start = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-f", "%M", CLI, "label", str(path), "-o", str(out), "-q",
                             "--jobs", str(jobs)], check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peak_mb = int(result.stderr.strip().splitlines()[-1]) / 1024
    ours = len(messages) / seconds
    bare = len(messages) / jieba_seconds
    kind = "every buyer message distinct" if unique else "buyer messages drawn from our corpus"
    print(f"| `label` {rows:,} rows {encoding} ({len(messages):,} buyer; {kind}), --jobs {jobs} | {ours:,.0f} buyer msg/s, "
          f"{rows / seconds:,.0f} rows/s, peak RSS {peak_mb:,.0f} MB | bare `jieba.lcut`, 1 process: {bare:,.0f} msg/s "
          f"| {ours / bare:.2f}× (target ≥ 1.5×, ≥ 10,000 msg/s, < 1 GB) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["cold", "warm", "batch"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--unique", action="store_true", help="batch: every buyer message distinct (no cache hits)")
    parser.add_argument("--encoding", default="utf-8", help="batch: encoding of the export")
    args = parser.parse_args()
    {"cold": lambda: cold(args.runs), "warm": lambda: warm(args.n), "batch": lambda: batch(args.rows, args.jobs, args.unique, args.encoding)}[args.what]()


if __name__ == "__main__":
    main()
