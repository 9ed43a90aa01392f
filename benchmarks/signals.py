"""Stop a running `label --jobs 2` with SIGINT, SIGTERM and SIGKILL, many times, and check how it ends.

    python benchmarks/signals.py                   # 20 tries of each signal on a 200,000-row export
    python benchmarks/signals.py --tries 5 --rows 50000

Each try starts `complaint-classifier label EXPORT -o OUT --jobs 2 -q`, waits until its output is
under way (the temporary file has grown past 1 MB) plus a random 0-2 s, sends the signal and
times the exit. A SIGINT or SIGTERM try is clean when the run exits with 130 or 143 within 5 s,
prints just "interrupted after N rows; nothing written to OUT", and leaves no output, no
temporary file and no worker. A SIGKILL try is clean when no file appears under the output name
and the workers exit by themselves (the temporary file stays: a killed process cannot remove it).
Linux only (reads /proc).
"""
from __future__ import annotations

import argparse
import csv
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from make_export import build  # noqa: E402

SCRIPT = Path(sys.executable).parent / "complaint-classifier"
EXPECTED = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -9}
INTERRUPTED = re.compile(r"interrupted after \d+ rows; nothing written to (.+)")


def _sigint_default() -> None:
    """In the child: SIGINT as in a terminal, even when this script runs in the background (which ignores it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] == "Z"
    except FileNotFoundError:
        return True


def one_try(export: Path, folder: Path, signum: signal.Signals, rng: random.Random) -> tuple[str, float | None]:
    """(outcome, seconds from the signal to the exit) of one run stopped by ``signum``."""
    out = folder / "out.csv"
    proc = subprocess.Popen([str(SCRIPT), "label", str(export), "-o", str(out), "--jobs", "2", "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_sigint_default)
    while sum(p.stat().st_size for p in folder.glob(".out.csv.*.part")) < 1 << 20:
        if proc.poll() is not None:
            return "ended before it was under way", None
        time.sleep(0.01)
    time.sleep(rng.uniform(0, 2))
    workers = children(proc.pid)
    sent = time.monotonic()
    proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return "no exit within 30 s", None
    seconds = time.monotonic() - sent
    err = err.decode("utf-8", "replace")
    left = sorted(p.name for p in folder.iterdir())
    for path in folder.iterdir():
        path.unlink()
    while time.monotonic() < sent + 5 and not all(gone(pid) for pid in workers):
        time.sleep(0.05)
    if proc.returncode == 0:
        return "finished before the signal", seconds
    if proc.returncode != EXPECTED[signum]:
        return f"exit code {proc.returncode}", seconds
    if "Traceback" in err:
        return "traceback", seconds
    if "out.csv" in left:
        return "a file under the output name", seconds
    if len(workers) != 2 or not all(gone(pid) for pid in workers):
        return "a worker left running", seconds
    if signum != signal.SIGKILL:
        match = INTERRUPTED.fullmatch(err.strip())
        if not match or match[1] != str(out):
            return "not one 'interrupted after N rows' line", seconds
        if left:
            return "a temporary file left", seconds
        if seconds >= 5:
            return "exit took 5 s or more", seconds
    return "clean", seconds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "export.csv"
        with open(export, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["会话ID", "时间", "发送方", "聊天内容"])
            writer.writerows(build(args.rows, args.seed))
        folder = Path(tmp) / "run"
        folder.mkdir()
        print(f"{args.tries} tries of each signal on `label` of {args.rows:,} rows with --jobs 2")
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            outcomes, times = Counter(), []
            for _ in range(args.tries):
                outcome, seconds = one_try(export, folder, signum, rng)
                outcomes[outcome] += 1
                if seconds is not None:
                    times.append(seconds)
            summary = ", ".join(f"{outcome} {n}" for outcome, n in outcomes.most_common())
            worst = f"{max(times):.2f} s" if times else "-"
            print(f"{signum.name:8} {outcomes['clean']}/{args.tries} clean ({summary}); worst time to exit {worst}")


if __name__ == "__main__":
    main()
