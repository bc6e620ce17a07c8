"""Runs on this machine: own process group, log to run.log, a limit that kills the whole tree, peak memory.

The child starts a new session, so Ctrl-C in the terminal reaches only the engine, which then ends the run
itself. A timeout sends SIGTERM to the process group and to every descendant ever seen (grandchildren that
left the group included), then SIGKILL after a grace period; at the end of every run, processes still carrying
the run's marker in their environment (escaped by a double fork and setsid()) are ended too: no child survives.
"""

from __future__ import annotations

import os
import select
import shlex
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from nrl_autoresearch.core.launcher import GRACE_S, Job, JobResult, JobState, Launcher, RunSpec, wait_loop
from nrl_autoresearch.core.redact import MASK, expand_secrets, redact, secret_values
from nrl_autoresearch.core.stoprules import exact_duration
from nrl_autoresearch.launchers import gpus, reaper

if TYPE_CHECKING:  # psutil is imported where a run is watched or ended: reading a campaign's state skips it
    import psutil

# The log's masker imports only `os` and `sys`: isolated and without site-packages, it is ready at once.
MASKER = [sys.executable, "-I", "-S", str(Path(__file__).with_name("logmask.py"))]
_INTERPRETER_ENV = ("PATH", "LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH")  # what an interpreter may need to start


class Masker:
    """The process that copies one run's output into its log, masking secrets; the run writes to its stdin.

    It is started before its run is known and told the log and the values later (`begin`), through a pipe of
    its own, never its command line or environment, so a launcher can keep one ready: the interpreter's start
    (tens of milliseconds) then never holds up a run's log."""

    def __init__(self) -> None:
        read, orders = os.pipe()
        self._orders: int | None = orders  # the write end, until the orders are sent or the masker discarded
        try:
            self.process = subprocess.Popen(  # not marked as the run's: it ends by itself once the run's
                [*MASKER, str(read), MASK],  # output has ended, and is never reaped
                env={k: os.environ[k] for k in _INTERPRETER_ENV if k in os.environ},  # no secret, no marker
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                pass_fds=(read,),
                start_new_session=True,
            )
        except BaseException:
            os.close(orders)
            raise
        finally:
            os.close(read)
        # a spare nobody discards (its launcher dropped unclosed) still gets its orders' end and exits
        self._finalizer = weakref.finalize(self, _close_quietly, orders)

    def begin(self, log_path: Path, secrets: list[str]) -> subprocess.Popen:
        """Send the log's path and the secrets; the process then copies its stdin into the log."""
        assert self._orders is not None, "a masker takes one run"
        fd, self._orders = self._orders, None
        self._finalizer.detach()
        with open(fd, "wb") as orders:  # closed whatever happens: a masker that died raises BrokenPipeError
            orders.write(b"\0".join([os.fsencode(log_path), *(os.fsencode(value) for value in secrets)]))
        return self.process

    def discard(self) -> None:
        """End a masker that got no run: its orders close empty and it exits without writing anything."""
        if self._orders is not None:
            self._finalizer.detach()
            os.close(self._orders)
            self._orders = None
        if self.process.stdin is not None:
            self.process.stdin.close()
        wait_exit(self.process, 5.0)


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def start_masker(log_path: Path, secrets: list[str]) -> subprocess.Popen:
    """A masker for `log_path`, started now."""
    return Masker().begin(log_path, secrets)


def wait_exit(proc: subprocess.Popen, timeout_s: float) -> bool:
    """Wait for a child to exit, waking the moment it does (Popen.wait with a timeout polls, up to 50 ms late).
    True when it has exited."""
    if proc.poll() is not None:
        return True
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # no pidfd (an old kernel, not Linux): Popen's own polling
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        poller = select.poll()  # not select(): it refuses descriptors from 1024 on
        poller.register(pidfd, select.POLLIN)
        poller.poll(timeout_s * 1000)
    finally:
        os.close(pidfd)
    return proc.poll() is not None


class LocalJob(Job):
    def __init__(
        self,
        *,
        pid: int,
        create_time: float,
        log_path: Path,
        command: str,
        started_at: float,
        timeout_s: float | None,
        proc: subprocess.Popen | None = None,
        grace_s: float = GRACE_S,
        marker: str | None = None,
        masker: subprocess.Popen | None = None,
    ):
        self.pid = pid
        self.job_id = "none"
        self.log_path = log_path
        self.command = command
        self.started_at = started_at
        self.timeout_s = timeout_s
        self.grace_s = grace_s
        self.marker = marker
        self._create_time = create_time
        self._proc = proc
        self._masker = masker  # copies the output into the log, masking secrets; done once it has exited
        self._seen: dict[int, float] = {pid: create_time}  # every descendant ever observed: pid -> create_time
        self._peak_rss = _rss(pid)  # at once: a run that ends before the first look still has a memory figure
        self._peak_gpu: float | None = None
        self._ended: tuple[JobState, str] | None = None

    # -- Job interface -------------------------------------------------------------------------------
    def state(self) -> JobState:
        if self._ended:
            return self._ended[0]
        if not self._alive():  # nothing left to sample: what outlived the run is ended by the marker's scan
            return JobState.COMPLETED
        self._sample()
        return JobState.RUNNING

    def wait(self, poll_s: float = 0.2, should_stop=None) -> JobResult:
        def stop_reason():
            if self.timeout_s is not None and time.time() - self.started_at >= self.timeout_s:
                return "timeout"
            return should_stop() if should_stop else None

        reason = wait_loop(self, poll_s, stop_reason, pause=self._pause)
        if reason == "timeout":
            self._end(
                JobState.TIMEOUT,
                f"timeout: exceeded the {exact_duration(self.timeout_s or 0)} limit; process tree killed",
            )
        elif reason:
            self._end(JobState.CANCELLED, reason)
        self._reap_stragglers()
        self._log_written()
        return self._result()

    def cancel(self, reason: str) -> None:
        self._end(JobState.CANCELLED, reason)

    def handle(self) -> dict:
        return {
            "pid": self.pid,
            "create_time": self._create_time,
            "log_path": str(self.log_path),
            "command": self.command,
            "started_at": self.started_at,
            "timeout_s": self.timeout_s,
            "marker": self.marker,
        }

    # -- internals -----------------------------------------------------------------------------------
    def _log_written(self) -> None:
        """The log is complete once the masker has copied the run's last output."""
        if self._masker is not None:
            wait_exit(self._masker, 30.0)

    def _alive(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return _same_process(self.pid, self._create_time)

    def _sample(self) -> None:
        """Track descendants and peak memory of the whole tree (RSS, and GPU memory where NVML exists)."""
        import psutil

        tree = self._tree()
        rss = 0
        for proc in tree:
            try:
                rss += proc.memory_info().rss
            except psutil.Error:
                pass
        self._peak_rss = max(self._peak_rss, rss)
        gpu = gpus.process_memory_gb({p.pid for p in tree})
        if gpu is not None:
            self._peak_gpu = max(self._peak_gpu or 0.0, gpu)

    def _tree(self) -> list[psutil.Process]:
        import psutil

        procs = []
        for pid, created in list(self._seen.items()):
            try:
                proc = psutil.Process(pid)
                if proc.create_time() != created:
                    continue
                procs.append(proc)
                for child in proc.children(recursive=True):
                    self._seen.setdefault(child.pid, child.create_time())
                    procs.append(child)
            except psutil.Error:
                continue
        return list({p.pid: p for p in procs}.values())

    def _end(self, state: JobState, reason: str) -> None:
        if self._ended is None:
            self._ended = (state, reason)
        self._kill_all()

    def _kill_all(self) -> None:
        """SIGTERM to the group and every tracked descendant; SIGKILL whatever is left after the grace period."""
        import psutil

        self._sample()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            targets = [p for p in self._tree()]
            if not targets and not self._group_alive():
                break
            _signal_group(self.pid, sig)
            for proc in targets:
                try:
                    proc.send_signal(sig)
                except psutil.Error:
                    pass
            deadline = time.time() + (self.grace_s if sig == signal.SIGTERM else 5.0)
            while time.time() < deadline and (self._tree_alive() or self._group_alive()):
                self._poll_child()
                time.sleep(0.05)
        self._poll_child()
        reaper.end(reaper.marked(self.marker), self.grace_s)

    def _reap_stragglers(self) -> None:
        """Processes the run left behind (daemons it forked, escaped or not) end with it."""
        if self._tree_alive() or self._group_alive():
            self._kill_all()
        else:
            reaper.end(reaper.marked(self.marker), self.grace_s)

    def _tree_alive(self) -> bool:
        return any(_same_process(pid, created) for pid, created in self._seen.items())

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def _pause(self, seconds: float) -> None:
        if self._proc is None:
            time.sleep(seconds)
        else:
            wait_exit(self._proc, seconds)

    def _poll_child(self) -> None:
        if self._proc is not None:
            self._proc.poll()

    def _result(self) -> JobResult:
        run_s = time.time() - self.started_at
        code = self._proc.returncode if self._proc is not None else None
        memory = self._peak_gpu if self._peak_gpu else self._peak_rss / 2**30
        if self._ended:
            state, reason = self._ended
        elif code is None:
            state, reason = JobState.COMPLETED, "finished (reattached: exit code unknown)"
        elif code == 0:
            state, reason = JobState.COMPLETED, "exit code 0"
        elif code < 0:
            name = signal.Signals(-code).name
            state = JobState.OUT_OF_MEMORY if code == -signal.SIGKILL else JobState.FAILED
            reason = f"killed by {name}" + (" (out of memory?)" if code == -signal.SIGKILL else "")
        else:
            state, reason = JobState.FAILED, f"exit code {code}"
        return JobResult(state, code, reason, run_s, 0.0, memory)


def _rss(pid: int) -> int:
    import psutil

    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return 0


def _same_process(pid: int, create_time: float) -> bool:
    import psutil

    try:
        proc = psutil.Process(pid)
        return proc.create_time() == create_time and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class LocalLauncher(Launcher):
    name = "local"

    def __init__(self, grace_s: float = GRACE_S):
        self.grace_s = grace_s
        self._spare: Masker | None = None  # started ahead for the next run
        self._spare_lock = threading.Lock()
        self._closed = False  # no spare once closed (a worker may still be submitting)

    @property
    def spare_masker(self) -> subprocess.Popen | None:
        """The masker kept ready for the next run (none before the first run and after `close`)."""
        spare = self._spare
        return spare.process if spare is not None else None

    def close(self) -> None:
        with self._spare_lock:
            spare, self._spare, self._closed = self._spare, None, True
        if spare is not None:
            spare.discard()

    def _masker(self, log_path: Path, secrets: list[str]) -> subprocess.Popen:
        """The spare masker, given this run; a new one when there is none (the first run) or it died."""
        with self._spare_lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            try:
                return spare.begin(log_path, secrets)
            except BrokenPipeError:
                spare.discard()
        return start_masker(log_path, secrets)

    def _start_spare(self) -> None:
        """Only saves the next run the masker's start: a spare that cannot be started is no failure of this run."""
        with self._spare_lock:
            if self._spare is None and not self._closed:
                try:
                    self._spare = Masker()
                except OSError:
                    pass

    def submit(self, spec: RunSpec) -> LocalJob:
        import psutil

        env = {**os.environ, "PYTHONUNBUFFERED": "1", **spec.env}
        if spec.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, spec.gpus))
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        masker = self._masker(spec.log_path, secret_values(env))
        assert masker.stdin is not None  # stdin=PIPE
        with masker.stdin as log:
            proc = subprocess.Popen(
                expand_secrets(spec.argv, env),
                cwd=spec.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        job = LocalJob(
            pid=proc.pid,
            create_time=psutil.Process(proc.pid).create_time(),
            log_path=spec.log_path,
            command=redact(shlex.join(spec.argv)),
            started_at=time.time(),
            timeout_s=spec.timeout_s,
            proc=proc,
            grace_s=self.grace_s,
            marker=spec.env.get(reaper.RUN_MARKER),
            masker=masker,
        )
        self._start_spare()  # while this run runs
        return job

    def reattach(self, handle: dict) -> LocalJob | None:
        """A run left by an engine that was killed: follow it to its end (its exit code is lost)."""
        if not _same_process(handle["pid"], handle["create_time"]):
            return None
        return LocalJob(
            pid=handle["pid"],
            create_time=handle["create_time"],
            log_path=Path(handle["log_path"]),
            command=handle["command"],
            started_at=handle["started_at"],
            timeout_s=handle["timeout_s"],
            grace_s=self.grace_s,
            marker=handle.get("marker"),
        )
