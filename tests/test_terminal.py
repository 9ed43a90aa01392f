"""The README's main command in a real (pseudo-)terminal: progress bar, summary, Ctrl-C.

The command runs as the session leader of a new pseudo-terminal, so stderr is a terminal (tqdm
draws its bar) and a Ctrl-C typed on it reaches the whole foreground process group, workers
included, as it does for a user.
"""
import csv
import fcntl
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "complaint-classifier"
README_INPUT = "data/examples/chat_export_gb18030.csv"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def in_terminal(args, *, interrupt_when=None, timeout: float = 120) -> tuple[int, list[str], float | None]:
    """Run the console script with ``args`` on a new pseudo-terminal of 100 columns, from the
    repository root. Type Ctrl-C once ``interrupt_when()`` holds. Returns the exit code, the
    lines the terminal showed (each ``\\r``-redrawn bar state its own line) and the seconds from
    Ctrl-C to exit."""
    pid, master = pty.fork()
    if pid == 0:  # the child: exec at once, never return into pytest
        try:
            os.chdir(ROOT)
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # as in a terminal, even if these tests run in the background
            os.execv(SCRIPT, [str(SCRIPT), *map(str, args)])
        finally:
            os._exit(127)
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    shown, typed_at, deadline = b"", None, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if typed_at is None and interrupt_when is not None and interrupt_when():
                os.write(master, b"\x03")
                typed_at = time.monotonic()
            if select.select([master], [], [], 0.05)[0]:
                try:
                    data = os.read(master, 1 << 16)
                except OSError:  # EIO: the terminal's other side closed, the command ended
                    break
                if not data:
                    break
                shown += data
        else:
            os.kill(pid, 9)
            pytest.fail(f"no exit within {timeout} s")
    finally:
        os.close(master)
    _, status = os.waitpid(pid, 0)
    exited = time.monotonic()
    text = ANSI.sub("", shown.decode("utf-8", "replace"))
    lines = [line.strip() for line in re.split(r"[\r\n]+", text) if line.strip()]
    return os.waitstatus_to_exitcode(status), lines, None if typed_at is None else exited - typed_at


def test_readme_command_in_a_terminal_draws_a_bar_and_prints_the_summary(tmp_path):
    out = tmp_path / "labelled.csv"
    code, lines, _ = in_terminal(["label", README_INPUT, "-o", out])
    assert code == 0, lines
    assert not any("Traceback" in line for line in lines)
    assert "columns: text=聊天内容, role=发送方, conversation=会话ID, time=时间" in lines  # a line of its own, not in the bar
    assert any(re.search(r"100%\|.*\| 300/300 ", line) for line in lines), lines  # the finished bar
    assert any(line.startswith("rows read 300, treated as buyer 199, labelled 199 ") for line in lines), lines
    assert lines[-1] == f"wrote {out}"
    with open(out, encoding="utf-8-sig", newline="") as fh:
        assert len(list(csv.reader(fh))) == 301


def test_ctrl_c_in_a_terminal_stops_the_run_cleanly(tmp_path):
    src = tmp_path / "export.csv"
    with open(src, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["会话ID", "发送方", "聊天内容"])
        writer.writerows([f"s{i // 4}", "客服" if i % 4 == 1 else "买家", f"第{i}条 拍了五天了还不发货"]
                         for i in range(120_000))
    out = tmp_path / "labelled.csv"

    def under_way() -> bool:  # two chunks or more written
        return sum(p.stat().st_size for p in tmp_path.glob(".labelled.csv.*.part")) > 4 << 20

    code, lines, seconds = in_terminal(["label", src, "-o", out], interrupt_when=under_way)
    assert seconds is not None, "the run ended before it was under way"
    assert code == 130 and seconds < 5, (code, seconds, lines)
    assert not any("Traceback" in line or "Error" in line for line in lines), lines
    messages = [line for line in lines if "interrupted" in line]
    assert len(messages) == 1 and re.fullmatch(rf"(\^C)?interrupted after [1-9]\d* rows; nothing written to {out}",
                                               messages[0]), lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.csv"]
