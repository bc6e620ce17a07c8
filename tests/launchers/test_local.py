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
from nrl_autoresearch.runner.reaper import RUN_MARKER

ESCAPE = '''\
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
'''


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("how", ["exit", "timeout", "cancel"])
def test_an_escaped_grandchild_ends_with_the_run(tmp_path: Path, how: str):
    script, pid_file = tmp_path / "escape.py", tmp_path / "grandchild.pid"
    script.write_text(ESCAPE)
    spec = RunSpec(name="t", argv=[sys.executable, str(script), str(pid_file), "0" if how == "exit" else "60"],
                   cwd=tmp_path, log_path=tmp_path / "run.log", run_dir=tmp_path,
                   env={RUN_MARKER: f"{tmp_path}#1"}, timeout_s=2.0 if how == "timeout" else None)
    neighbour = psutil.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             env={**os.environ, RUN_MARKER: f"{tmp_path}#2"})  # another run's marker: left alone
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
