"""Throughput of `label --engine dask` with 1 and 2 local workers, next to the single-machine `label --jobs 2`.

    python benchmarks/dask_bench.py --rows 1000000 --parts 8 --runs 3
    python benchmarks/dask_bench.py --rows 1000000 --parts 8 --runs 1 --by-conversation

Makes the export with make_export.py (once, in benchmarks/out/), splits it into ``--parts`` CSV
parts of consecutive rows (so conversations cross part boundaries), then runs, interleaved in each
round so that all three see the same machine load:

* local:  `label export.csv --jobs 2`, peak RSS from /usr/bin/time (the largest process);
* dask 1, dask 2: `label parts/ --engine dask --scheduler ADDRESS` on a LocalCluster of 1 or 2
  worker processes (one thread each) started by this script, so the time excludes the cluster's
  start-up (printed apart); each worker's peak RSS is read inside the worker (getrusage).

Prints the medians as Markdown table rows for benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
CLI = str(Path(sys.executable).parent / "complaint-classifier")


def export(rows: int) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"export_{rows}_utf-8.csv"
    if not path.exists():
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_export.py"), "--rows", str(rows),
                        "-o", str(path)], check=True)
    return path


def split(path: Path, parts: int) -> Path:
    """The export cut into ``parts`` CSV files of consecutive rows, each with the header."""
    folder = OUT / f"{path.stem}_{parts}_parts"
    if folder.is_dir():
        return folder
    folder.mkdir()
    with open(path, encoding="utf-8", newline="") as fh:
        header, *lines = fh.readlines()  # the export has no line breaks inside fields
    size = -(-len(lines) // parts)
    for k in range(parts):
        (folder / f"part-{k:03d}.csv").write_text(header + "".join(lines[k * size:(k + 1) * size]), encoding="utf-8")
    return folder


def timed(cmd: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB, the largest process of the command) of a run."""
    start = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], check=True, capture_output=True, text=True)
    return time.perf_counter() - start, int(result.stderr.strip().splitlines()[-1]) / 1024


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--parts", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--by-conversation", action="store_true", help="also pool conversations (the shuffle)")
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    path = export(args.rows)
    folder = split(path, args.parts)
    extra = ["--by-conversation"] if args.by_conversation else []
    clusters, startup = {}, {}
    for workers in (1, 2):
        start = time.perf_counter()
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=logging.CRITICAL)
        clusters[workers] = (cluster, Client(cluster))
        startup[workers] = time.perf_counter() - start
    seconds = {"local": [], 1: [], 2: []}
    rss = {"local": 0.0, 1: 0.0, 2: 0.0}
    manifest = None
    for _ in range(args.runs):
        took, peak = timed([CLI, "label", str(path), "-o", str(OUT / "labelled.csv"), "-q", "--jobs", "2", *extra])
        seconds["local"].append(took)
        rss["local"] = max(rss["local"], peak)
        for workers, (cluster, client) in clusters.items():
            out = OUT / f"labelled_dask_{workers}"
            took, peak = timed([CLI, "label", str(folder), "-o", str(out), "-q", "--engine", "dask",
                                "--scheduler", cluster.scheduler_address, *extra])
            seconds[workers].append(took)
            manifest = json.loads((out / "_manifest.json").read_text("utf-8"))
            assert manifest["rows_read"] == args.rows and not manifest["failed"]
    logging.getLogger("distributed").setLevel(logging.ERROR)  # no INFO lines as the clusters close
    for workers, (cluster, client) in clusters.items():
        rss[workers] = max(client.run(peak_rss_mb).values())
        client.close()
        cluster.close()

    buyer = manifest["statuses"].get("ok", 0) + manifest["statuses"].get("truncated", 0)
    what = " --by-conversation" if args.by_conversation else ""
    local = statistics.median(seconds["local"])
    print(f"| `label --jobs 2`{what}, one {args.rows:,}-row CSV | {local:.1f} s | {args.rows / local:,.0f} | "
          f"{rss['local']:,.0f} MB (largest process) | 1.00× |")
    for workers in (1, 2):
        median = statistics.median(seconds[workers])
        print(f"| `--engine dask`{what}, {workers} worker{'s' if workers > 1 else ''}, {args.parts} CSV parts "
              f"| {median:.1f} s | {args.rows / median:,.0f} | {rss[workers]:,.0f} MB per worker | "
              f"{local / median:.2f}× |")
    print(f"\n{buyer:,} buyer messages labelled; median of {args.runs} interleaved run(s); cluster start-up "
          f"(not in the times above): {startup[1]:.1f} s with 1 worker, {startup[2]:.1f} s with 2")


if __name__ == "__main__":
    main()
