"""The local launcher ends every process a run started, including a grandchild that escaped by a double fork
with setsid() and ignores SIGTERM: after a normal exit, a timeout and a cancel."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from nrl_autoresearch.core.launcher import RunSpec
from nrl_autoresearch.launchers.local import LocalLauncher
from nrl_autoresearch.launchers.reaper import RUN_MARKER

ESCAPE = """\
import os, signal, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open(sys.argv[1] + ".tmp", "w").write(str(os.getpid()))
        os.replace(sys.argv[1] + ".tmp", sys.argv[1])
        time.sleep(600)
    os._exit(0)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.01)
time.sleep(float(sys.argv[2]))
"""


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("how", ["exit", "timeout", "cancel"])
def test_an_escaped_grandchild_ends_with_the_run(tmp_path: Path, how: str):
    script, pid_file = tmp_path / "escape.py", tmp_path / "grandchild.pid"
    script.write_text(ESCAPE)
    spec = RunSpec(
        name="t",
        argv=[sys.executable, str(script), str(pid_file), "0" if how == "exit" else "60"],
        cwd=tmp_path,
        log_path=tmp_path / "run.log",
        run_dir=tmp_path,
        env={RUN_MARKER: f"{tmp_path}#1"},
        timeout_s=2.0 if how == "timeout" else None,
    )
    neighbour = psutil.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], env={**os.environ, RUN_MARKER: f"{tmp_path}#2"}
    )  # another run's marker: left alone
    job = LocalLauncher(grace_s=0.5).submit(spec)
    try:
        started = time.time()
        stop = (lambda: "cancelled" if pid_file.exists() else None) if how == "cancel" else None
        result = job.wait(poll_s=0.05, should_stop=stop)
        grandchild = int(pid_file.read_text())
        assert gone(grandchild), f"{how}: the escaped grandchild survived"
        assert neighbour.is_running() and time.time() - started < 30
        assert result.state.value == {"exit": "COMPLETED", "timeout": "TIMEOUT", "cancel": "CANCELLED"}[how]
    finally:
        neighbour.kill()
        neighbour.wait()
        if pid_file.exists() and not gone(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def _spec(tmp_path: Path, code: str, **fields) -> RunSpec:
    script = tmp_path / "run.py"
    script.write_text(code)
    return RunSpec(
        name="t",
        argv=[sys.executable, str(script), *fields.pop("args", [])],
        cwd=tmp_path,
        log_path=tmp_path / "out" / "run.log",
        run_dir=tmp_path,
        **fields,
    )


def test_a_run_logs_both_streams_in_its_folder_with_its_environment(tmp_path: Path):
    code = (
        'import os, sys\nprint("out", os.getcwd(), os.environ["LR"], os.environ["CUDA_VISIBLE_DEVICES"])\n'
        'print("err", os.environ["PYTHONUNBUFFERED"], file=sys.stderr)\n'
    )
    job = LocalLauncher().submit(_spec(tmp_path, code, env={"LR": "0.1"}, gpus=(2, 3)))
    result = job.wait(poll_s=0.05)
    assert result.succeeded and result.exit_code == 0 and result.reason == "exit code 0"
    assert job.log_path.read_text().splitlines() == [f"out {tmp_path} 0.1 2,3", "err 1"]
    assert result.peak_memory_gb is not None and result.peak_memory_gb > 0


@pytest.mark.parametrize(
    "code, state, reason",
    [
        ("raise SystemExit(3)", "FAILED", "exit code 3"),
        (
            "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
            "OUT_OF_MEMORY",
            "killed by SIGKILL (out of memory?)",
        ),
        ("import os, signal; os.kill(os.getpid(), signal.SIGABRT)", "FAILED", "killed by SIGABRT"),
    ],
)
def test_how_a_run_ended_is_its_state_and_reason(tmp_path: Path, code: str, state: str, reason: str):
    result = LocalLauncher().submit(_spec(tmp_path, code)).wait(poll_s=0.05)
    assert (result.state.value, result.reason, result.succeeded) == (state, reason, False)


def test_a_secret_reaches_the_run_but_neither_its_log_nor_its_recorded_command(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HUB_API_TOKEN", "s3cr3t-value-123")
    job = LocalLauncher().submit(_spec(tmp_path, "import sys; print('token', sys.argv[1])", args=["${HUB_API_TOKEN}"]))
    assert job.wait(poll_s=0.05).succeeded
    log = job.log_path.read_text()
    assert log.startswith("token ") and "s3cr3t-value-123" not in log
    assert "s3cr3t" not in job.command and "${HUB_API_TOKEN}" in job.command


def test_a_run_left_by_a_killed_engine_is_reattached_and_followed_to_its_end(tmp_path: Path):
    first = LocalLauncher().submit(_spec(tmp_path, "import time; time.sleep(1.5); print('done')", timeout_s=60))
    handle = first.handle()
    again = LocalLauncher().reattach(handle)
    assert again is not None and again.state().value == "RUNNING"
    result = again.wait(poll_s=0.05)
    assert result.state.value == "COMPLETED" and result.exit_code is None and "exit code unknown" in result.reason
    first.wait(poll_s=0.05)
    assert LocalLauncher().reattach(handle) is None  # that process is gone: nothing to follow
    assert LocalLauncher().reattach({**handle, "create_time": handle["create_time"] - 5}) is None  # a reused pid
