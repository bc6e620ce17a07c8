"""Start and stop the real services tests run against.

Slurm and Ray are started by the shell scripts in scripts/lab/ (so the same
setup is usable by hand), each in a lab folder of its own; the scripts find
every process they started again through that folder, never by name.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts" / "lab"

# Installing Slurm from Debian on first use can take a while on a slow mirror.
UP_TIMEOUT_S = 600
DOWN_TIMEOUT_S = 120


class LabError(RuntimeError):
    """A service could not be started or stopped."""


def _script(name: str, env: dict[str, str], *args: str, timeout: float) -> str:
    """Run scripts/lab/<name>; return its stdout, or raise LabError with all output."""
    cmd = ["bash", str(SCRIPTS / name), *args]
    try:
        proc = subprocess.run(
            cmd,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise LabError(f"{name} did not finish within {timeout:.0f}s ({env})") from None
    if proc.returncode != 0:
        raise LabError(f"{name} failed (exit {proc.returncode}) with {env}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def start_watchdog(down_script: str, env: dict[str, str], *args: str) -> subprocess.Popen:
    """Run `down_script` once this process is gone, however it ended.

    Finalizers do not run when pytest is SIGKILLed or exits through os._exit
    (pytest-timeout's thread method); the watchdog still stops the services.
    It runs in a session of its own so that a Ctrl-C at the terminal does not
    reach it. Stop it with stop_watchdog() after a normal teardown.
    """
    loop = 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; shift; exec bash "$@"'
    return subprocess.Popen(
        ["bash", "-c", loop, "lab-watchdog", str(os.getpid()), str(SCRIPTS / down_script), *args],
        env={**os.environ, **env},
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_watchdog(proc: subprocess.Popen) -> None:
    # Its own session made it a process-group leader: the group holds only it
    # and its `sleep`.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


# --------------------------------------------------------------------- Slurm

_TERMINAL_JOB_STATES = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
}


@dataclass
class SlurmCluster:
    """A private single-node cluster; client commands need `env` (SLURM_CONF)."""

    lab: Path

    @property
    def conf(self) -> Path:
        return self.lab / "etc" / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *cmd: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
        """Run a Slurm client command against this cluster (text output captured)."""
        kwargs.setdefault("capture_output", True)
        return subprocess.run(cmd, env={**os.environ, **self.env}, text=True, timeout=timeout, **kwargs)

    def job_info(self, job_id: str) -> dict[str, str]:
        """`scontrol -o show job` as a dict ({} once the job is forgotten)."""
        out = self.run("scontrol", "-o", "show", "job", str(job_id)).stdout
        return dict(re.findall(r"(\S+?)=(\S*)", out))

    def wait_job(self, job_id: str, timeout: float = 60) -> dict[str, str]:
        """Wait until the job reaches a final state; return its job_info()."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.job_info(job_id)
            if info.get("JobState") in _TERMINAL_JOB_STATES:
                return info
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} not finished after {timeout}s: {info}")
            time.sleep(0.3)

    def cancel_all_jobs(self, timeout: float = 30) -> None:
        """Cancel every job in the queue and wait until the queue is empty."""

        def queued() -> list[str]:
            return self.run("squeue", "-h", "-o", "%A").stdout.split()

        if jobs := queued():
            self.run("scancel", *jobs)
        deadline = time.monotonic() + timeout
        while queued():
            if time.monotonic() > deadline:
                raise TimeoutError(f"Slurm jobs still queued after {timeout}s: {queued()}")
            time.sleep(0.3)

    def log_tail(self, lines: int = 30) -> str:
        parts = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            path = self.lab / "log" / name
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"---- {path} ----\n" + "\n".join(tail))
        return "\n".join(parts)


def start_slurm(lab: Path) -> SlurmCluster:
    _script("slurm-up.sh", {"SLURM_LAB": str(lab)}, timeout=UP_TIMEOUT_S)
    return SlurmCluster(lab)


def stop_slurm(lab: Path, purge: bool = False) -> None:
    _script("slurm-down.sh", {"SLURM_LAB": str(lab)}, *(["--purge"] if purge else []), timeout=DOWN_TIMEOUT_S)


# ----------------------------------------------------------------------- Ray


@dataclass
class RayCluster:
    """A private Ray head. `address` is the dashboard URL (Jobs API);
    `gcs_address` is what `ray.init(address=...)` takes."""

    lab: Path
    address: str
    gcs_address: str

    @property
    def env(self) -> dict[str, str]:
        return {"RAY_ADDRESS": self.address}

    def cancel_all_jobs(self, timeout: float = 30) -> None:
        """Stop every unfinished Ray job and wait until all have ended."""
        from ray.job_submission import JobSubmissionClient

        client = JobSubmissionClient(self.address)

        def unfinished() -> list[str]:
            # only jobs submitted through the Jobs API carry a submission id, and only those can be stopped by it
            jobs = client.list_jobs()
            return [j.submission_id for j in jobs if j.submission_id is not None and not j.status.is_terminal()]

        for job in unfinished():
            client.stop_job(job)
        deadline = time.monotonic() + timeout
        while unfinished():
            if time.monotonic() > deadline:
                raise TimeoutError(f"Ray jobs still running after {timeout}s: {unfinished()}")
            time.sleep(0.3)


def start_ray(lab: Path, gpus: int | None = None) -> RayCluster:
    """`gpus`: logical GPUs the head declares (None: the machine's own)."""
    env = {"RAY_LAB": str(lab), **({"RAY_LAB_GPUS": str(gpus)} if gpus is not None else {})}
    # The Ray of the Python running the tests, unless RAY_BIN says otherwise.
    ray_bin = Path(sys.executable).parent / "ray"
    if "RAY_BIN" not in os.environ and ray_bin.exists():
        env["RAY_BIN"] = str(ray_bin)
    _script("ray-up.sh", env, timeout=UP_TIMEOUT_S)
    return RayCluster(
        lab,
        address=(lab / "address").read_text().strip(),
        gcs_address=(lab / "gcs_address").read_text().strip(),
    )


def stop_ray(lab: Path, purge: bool = False) -> None:
    _script("ray-down.sh", {"RAY_LAB": str(lab)}, *(["--purge"] if purge else []), timeout=DOWN_TIMEOUT_S)


# ------------------------------------------------------------------ Chromium

CHROMIUM = "/usr/bin/chromium"  # Debian's package; `apt-get install chromium`

# Headless, offline and quiet: no sandbox (we run as root), no GPU, and none
# of the background traffic a first run would otherwise start.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_binary() -> str:
    """Path of Debian's chromium; LabError (with the fix) when it is missing."""
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if not path:
        raise LabError(f"{CHROMIUM} not found: apt-get install -y chromium")
    return path


def chromium_run(args: list[str], profile: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run headless Chromium with CHROMIUM_FLAGS + `args`, profile dir `profile`.

    Returns the finished process, stdout and stderr merged in `.stdout`.
    Chromium forks helpers (zygote, renderer, ...): it runs in a session of its
    own, and on timeout the whole group is killed, so nothing outlives the call.
    (Its crash handler leaves the group but exits with the browser.)
    """
    cmd = [chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    # Debian's build forces the crash reporter on; keep its files, like all the
    # others, in the profile instead of ~/.config and ~/.cache.
    env = {**os.environ, "XDG_CONFIG_HOME": str(profile / "config"), "XDG_CACHE_HOME": str(profile / "cache")}
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env=env,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise LabError(f"chromium did not finish within {timeout}s:\n{out}") from None
    finally:
        # Helpers that outlive a finished browser are ours too.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(cmd, proc.returncode, out, None)


def chromium_screenshot(
    url: str, png: Path, profile: Path, timeout: float = 60, size: str = "800,600"
) -> subprocess.CompletedProcess:
    """Render `url` to the PNG file `png` (`size` is "width,height")."""
    return chromium_run([f"--window-size={size}", f"--screenshot={png}", url], profile, timeout)
