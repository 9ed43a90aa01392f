"""Speed benchmarks, each measured side by side with its baseline in one run.

    python benchmarks/speed.py cold                  # cold `predict` vs `import jieba; jieba.initialize()`
    python benchmarks/speed.py warm                  # `model.classify` on 10,000 distinct messages vs bare jieba.lcut
    python benchmarks/speed.py batch --rows 1000000  # `label --jobs 1` and `--jobs 2` vs bare jieba.lcut
    python benchmarks/speed.py batch --rows 1000000 --unique   # every buyer turn distinct

The exports come from make_export.py: buyer turns that rarely repeat (about a quarter are short stock
phrases such as 好的 / 在吗). Prints Markdown table rows for benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
BIN = Path(sys.executable).parent
CLI = str(BIN / "complaint-classifier")
MESSAGE = "亲，拍了三天了还不发货，什么情况"
JIEBA = ("import csv,sys,time,jieba; jieba.setLogLevel(30); jieba.initialize();"
         "m=[r[3] for r in csv.reader(open(sys.argv[1],encoding=sys.argv[2])) if r[2]=='买家'][:int(sys.argv[3])];"
         "t=time.perf_counter(); [jieba.lcut(x) for x in m]; print(len(m)/(time.perf_counter()-t))")


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def cold(runs: int) -> None:
    baseline, ours = [], []
    subprocess.run([CLI, "predict", MESSAGE], check=True, capture_output=True)  # warm the OS file cache
    for _ in range(runs):  # interleaved, so both see the same machine load
        baseline.append(timed([sys.executable, "-c", "import jieba; jieba.setLogLevel(30); jieba.initialize()"]))
        ours.append(timed([CLI, "predict", MESSAGE]))
    b, o = statistics.median(baseline), statistics.median(ours)
    print(f"| cold `predict` (median of {runs}) | {o:.3f} s | `import jieba; jieba.initialize()` {b:.3f} s | "
          f"{o / b:.2f}× (target ≤ 0.6×) |")


def export(rows: int, unique: bool = False, encoding: str = "utf-8") -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"export_{rows}{'_unique' if unique else ''}_{encoding}.csv"
    if not path.exists():
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_export.py"), "--rows", str(rows),
                        "--encoding", encoding, "-o", str(path)] + (["--unique"] if unique else []), check=True)
    return path


def bare_jieba(path: Path, encoding: str, limit: int) -> float:
    """Messages per second of single-process `jieba.lcut` (HMM on, its default) over the export's buyer turns."""
    return float(subprocess.run([sys.executable, "-c", JIEBA, str(path), encoding, str(limit)], check=True,
                                capture_output=True, text=True).stdout)


def warm(n: int) -> None:
    sys.path.insert(0, str(ROOT))
    import classifier

    model = classifier.load_model()
    path = export(100_000, unique=True)
    with open(path, encoding="utf-8", newline="") as fh:
        messages = [row[3] for row in csv.reader(fh) if row[2] == "买家"][:n]
    model.classify(messages[:100])
    times = []
    for _ in range(3):
        start = time.perf_counter()
        model.classify(messages)
        times.append(time.perf_counter() - start)
    ours = n / statistics.median(times)
    bare = bare_jieba(path, "utf-8", n)
    print(f"| warm `model.classify`, {n:,} distinct messages, 1 process (median of 3) | {ours:,.0f} msg/s | "
          f"bare `jieba.lcut` {bare:,.0f} msg/s | {ours / bare:.2f}× (target ≥ 10,000 msg/s) |")


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            continue
    return total / 1024


def run_label(path: Path, jobs: int) -> tuple[float, float]:
    """(seconds, peak RSS summed over the process tree) of one `label` run."""
    out = OUT / f"labelled_{jobs}.csv"
    start = time.perf_counter()
    proc = subprocess.Popen([CLI, "label", str(path), "-o", str(out), "-q", "--jobs", str(jobs)])
    peak = [0.0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss_mb(proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    if proc.wait() != 0:
        raise SystemExit(f"label failed with exit code {proc.returncode}")
    sampler.join()
    return time.perf_counter() - start, peak[0]


def batch(rows: int, unique: bool, encoding: str) -> None:
    path = export(rows, unique, encoding)
    with open(path, encoding=encoding, newline="") as fh:
        buyers = sum(1 for row in csv.reader(fh) if row[2] == "买家")
    bare = bare_jieba(path, encoding, buyers)
    one, rss_one = run_label(path, 1)
    two, rss_two = run_label(path, 2)
    kind = "every buyer turn distinct" if unique else "buyer turns rarely repeat (a quarter stock phrases)"
    for jobs, seconds, rss in ((1, one, rss_one), (2, two, rss_two)):
        rate = buyers / seconds
        print(f"| `label --jobs {jobs}`, {rows:,} rows {encoding} ({buyers:,} buyer turns; {kind}) | "
              f"{rate:,.0f} buyer msg/s, {rows / seconds:,.0f} rows/s, peak RSS {rss:,.0f} MB (all processes) | "
              f"bare `jieba.lcut`, 1 process: {bare:,.0f} msg/s | {rate / bare:.2f}× |")
    print(f"| `--jobs 2` against `--jobs 1` | | | {one / two:.2f}× (target ≥ 1.7×) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["cold", "warm", "batch"])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--unique", action="store_true", help="batch: every buyer turn distinct")
    parser.add_argument("--encoding", default="utf-8", help="batch: encoding of the export")
    args = parser.parse_args()
    {"cold": lambda: cold(args.runs), "warm": lambda: warm(args.n),
     "batch": lambda: batch(args.rows, args.unique, args.encoding)}[args.what]()


if __name__ == "__main__":
    main()
