"""A local run's log is copied through the masker: a known secret never reaches the file, even in pieces."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from nrl_autoresearch.launchers.local import start_masker, wait_exit

SECRET = "tok-0123456789abcdef"


def test_a_secret_split_across_writes_and_inside_a_huge_line_is_masked(tmp_path: Path):
    log = tmp_path / "run.log"
    masker = start_masker(log, [SECRET])  # as the local launcher starts it
    assert masker.stdin is not None
    huge = "x" * (64 * 1024 - 7) + SECRET + "y" * 100_000
    for piece in ("step 1 token=tok-0123", "456789abcdef ok\n", "progress 50%\r", huge, "\nlast line"):
        masker.stdin.write(piece.encode())
        masker.stdin.flush()
        time.sleep(0.05)
    masker.stdin.close()
    assert masker.wait(timeout=30) == 0
    text = log.read_bytes().decode()
    assert SECRET not in text and "tok-0123" not in text
    assert text.startswith("step 1 token=*** ok\nprogress 50%\r" + "x" * 100)
    assert text.endswith("y" * 100 + "\nlast line") and text.count("***") == 2


def test_the_secrets_reach_the_masker_through_its_pipe_never_its_command_line_or_environment(tmp_path: Path):
    masker = start_masker(tmp_path / "run.log", [SECRET, "second-secret-value"])
    assert masker.stdin is not None
    try:
        masker.stdin.write(b"a second-secret-value and " + SECRET.encode() + b"\n")
        masker.stdin.flush()
        seen = Path(f"/proc/{masker.pid}/cmdline").read_bytes() + Path(f"/proc/{masker.pid}/environ").read_bytes()
    finally:
        masker.stdin.close()
        masker.wait(timeout=30)
    assert SECRET.encode() not in seen and b"second-secret" not in seen
    assert (tmp_path / "run.log").read_text() == "a *** and ***\n"


def test_wait_exit_returns_when_the_child_exits_and_false_at_its_limit():
    quick = subprocess.Popen([sys.executable, "-c", "pass"])
    assert wait_exit(quick, 30.0) and quick.returncode == 0
    slow = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        start = time.monotonic()
        assert not wait_exit(slow, 0.3)
        assert 0.25 <= time.monotonic() - start < 10
    finally:
        slow.kill()
        slow.wait()
