"""Live progress lines: parsed training steps, a time-left estimate, a plain rate when not on a terminal."""

from __future__ import annotations

from pathlib import Path

from nrl_autoresearch.core.progress import Progress, run_line
from tests.helpers import PY, cli, make_repo


def test_run_line_estimates_time_left_from_steps():
    assert (
        run_line("[2] lr-up", 65, (13, 40), "val:accuracy 0.612", 3600)
        == "[2] lr-up: step 13/40, 1m5s elapsed, ~2m left, val:accuracy 0.612"
    )
    assert run_line("[1] baseline", 5, None, None, 600) == "[1] baseline: 5s elapsed, limit 10m"


def test_plain_updates_are_rate_limited():
    lines = []
    progress = Progress(lines.append, tty=False, every_s=30)
    assert progress.due("a")
    progress.show("a", "one")
    assert not progress.due("a") and progress.due("b")
    progress.show("a", "one")  # nothing new: not printed again
    progress.show("a", "two")
    assert lines == ["one", "two"]


def test_progress_lines_appear_during_a_long_run(tmp_path: Path):
    script = (
        "import time\nfor i in range(1, 5):\n"
        '    print(f"========================= Step {i}/4 =========================", flush=True)\n'
        '    print(f"score: {i / 10}", flush=True)\n    time.sleep(1)\n'
    )
    repo = make_repo(tmp_path / "p", {"t.py": script})
    cli(
        repo,
        "init",
        "--command",
        f"{PY} t.py",
        "--metric",
        "score",
        "--maximize",
        "--max-experiments",
        "1",
        check=True,
        env={"AUTORESEARCH_PROGRESS_EVERY_S": "1"},
    )
    out = cli(repo, "baseline", check=True, env={"AUTORESEARCH_PROGRESS_EVERY_S": "1"}).stdout
    progress = [line for line in out.splitlines() if line.startswith("[1] baseline: ")]
    assert progress, out
    assert any(
        "elapsed" in line and "| no keep yet; stop condition not yet met: 0/1 attempted" in line for line in progress
    )
