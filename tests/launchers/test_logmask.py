"""A local run's log is copied through the masker: a known secret never reaches the file, even in pieces."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil

from nrl_autoresearch.core.launcher import RunSpec
from nrl_autoresearch.launchers.local import LocalLauncher, Masker, start_masker, wait_exit

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


SPARE_HOLDER = """
import sys, time
from pathlib import Path
from nrl_autoresearch.core.launcher import RunSpec
from nrl_autoresearch.launchers.local import LocalLauncher
launcher = LocalLauncher()
folder = Path(sys.argv[1])
job = launcher.submit(RunSpec(name="r", argv=["echo", "x: 1"], cwd=folder, log_path=folder / "run.log", run_dir=folder))
job.wait()
print(launcher.spare_masker.pid, flush=True)
time.sleep(600)
"""


def test_a_spare_masker_that_never_gets_a_run_ends_and_writes_nothing(tmp_path: Path):
    spare = Masker()
    spare.discard()
    assert spare.process.returncode == 0 and not list(tmp_path.iterdir())


def test_the_launchers_spare_masker_takes_the_next_run_and_ends_with_close_or_with_its_engine(tmp_path: Path):
    launcher = LocalLauncher()
    for name in ("one", "two"):
        spec = RunSpec(
            name=name, argv=["echo", f"x: {name}"], cwd=tmp_path, log_path=tmp_path / name / "run.log", run_dir=tmp_path
        )
        assert launcher.submit(spec).wait().succeeded
        assert (tmp_path / name / "run.log").read_text() == f"x: {name}\n"
    spare = launcher.spare_masker
    assert spare is not None and spare.poll() is None
    launcher.close()
    assert spare.returncode == 0 and launcher.spare_masker is None
    # an engine killed outright: the spare's orders pipe closes with it, and the spare ends by itself
    holder = subprocess.Popen([sys.executable, "-c", SPARE_HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    pid = int(holder.stdout.readline())
    holder.kill()
    holder.wait()
    deadline = time.monotonic() + 10
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the spare masker outlived its engine"
        time.sleep(0.05)


def test_a_run_whose_spare_masker_died_gets_a_new_one_and_its_whole_log(tmp_path: Path):
    launcher = LocalLauncher()
    first = RunSpec(
        name="a", argv=["echo", "x: 1"], cwd=tmp_path, log_path=tmp_path / "a" / "run.log", run_dir=tmp_path
    )
    assert launcher.submit(first).wait().succeeded
    spare = launcher.spare_masker
    assert spare is not None
    spare.kill()
    spare.wait()
    second = RunSpec(
        name="b", argv=["echo", "x: 2"], cwd=tmp_path, log_path=tmp_path / "b" / "run.log", run_dir=tmp_path
    )
    assert launcher.submit(second).wait().succeeded
    assert (tmp_path / "b" / "run.log").read_text() == "x: 2\n"
    launcher.close()
