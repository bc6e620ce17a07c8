"""A local run's log is copied through the masker: a known secret never reaches the file, even in pieces."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from nrl_autoresearch.launchers.local import MASKER

SECRET = "tok-0123456789abcdef"


def test_a_secret_split_across_writes_and_inside_a_huge_line_is_masked(tmp_path: Path):
    log = tmp_path / "run.log"
    env = {**os.environ, "MY_API_TOKEN": SECRET}
    masker = subprocess.Popen([*MASKER, str(log)], stdin=subprocess.PIPE, env=env)  # as the local launcher starts it
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
