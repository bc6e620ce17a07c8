"""Runs on a Slurm cluster: a generated sbatch script, NeMo-RL's `ray.sub`, or steps in one held allocation.

Slurm enforces the limit itself (`--time`, in whole minutes); a job it lets overrun by more than
`overshoot_s` is cancelled here. A job's state comes from `squeue` while it is queued or running, then from
`scontrol` (until MinJobAge forgets it), then from `sacct` (the accounting database, or `-c`: the
job-completion file, which works without slurmdbd). Secrets stay `${NAME}` references in everything
written or submitted: the shell of the job expands them from the environment sbatch/srun pass along.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from nrl_autoresearch.core.launcher import Job, JobResult, JobState, Launcher, PolledJob, RunSpec
from nrl_autoresearch.core.redact import redact, shell_command, shell_word
from nrl_autoresearch.core.stoprules import format_duration
from nrl_autoresearch.launchers.local import GRACE_S, LocalJob, LocalLauncher

MODES = ("batch", "interactive", "ray.sub")
ALLOCATION_NAME = "autoresearch-allocation"

_STATES = {
    **dict.fromkeys(("PENDING", "CONFIGURING", "REQUEUED", "RESIZING", "SUSPENDED", "REQUEUE_HOLD"), JobState.PENDING),
    **dict.fromkeys(("RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"), JobState.RUNNING),
    "COMPLETED": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "TIMEOUT": JobState.TIMEOUT,
    "DEADLINE": JobState.TIMEOUT,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY,
    "CANCELLED": JobState.CANCELLED,
    "NODE_FAIL": JobState.NODE_FAIL,
    "BOOT_FAIL": JobState.NODE_FAIL,
    "PREEMPTED": JobState.PREEMPTED,
}


class SlurmError(RuntimeError):
    """A Slurm command failed, or a run cannot be placed where it was asked to run."""


# -- shell text --------------------------------------------------------------------------------------


def command_line(env: dict[str, str], argv: list[str]) -> str:
    """`NAME=value ... command args` as a person would type it (what the ledger records)."""
    return redact(" ".join([f"{k}={shlex.quote(v)}" for k, v in env.items()] + [shlex.join(argv)]))


def _minutes(timeout_s: float | None) -> int | None:
    """Slurm's limits are whole minutes: round up, so a run always gets at least its limit."""
    return None if timeout_s is None else max(1, math.ceil(timeout_s / 60))


# -- what Slurm says about a job ---------------------------------------------------------------------


@dataclass(frozen=True)
class SlurmRecord:
    """One job as a Slurm command reports it. Times are epoch seconds; while the job runs, `end` is when its
    time limit will end it."""

    state: str
    exit_code: int | None = None
    signal: int = 0
    reason: str = ""
    submit: float | None = None
    start: float | None = None
    end: float | None = None

    @property
    def job_state(self) -> JobState:
        return _STATES.get(self.state, JobState.UNKNOWN)


def _epoch(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:  # Unknown, None, N/A, NONE
        return None


def _record(
    state: str, exit_status: str = "", reason: str = "", submit: str = "", start: str = "", end: str = ""
) -> SlurmRecord:
    """A record from Slurm's text fields (`ExitCode` is `code:signal`; sacct says `CANCELLED by 0`)."""
    code, _, sig = exit_status.partition(":")
    word = state.split()[0] if state else "UNKNOWN"
    return SlurmRecord(
        word,
        int(code) if code.isdigit() else None,
        int(sig) if sig.isdigit() else 0,
        "" if reason in ("None", "(null)") else reason,
        _epoch(submit),
        _epoch(start),
        _epoch(end),
    )


def describe(record: SlurmRecord, limit_min: int | None) -> str:
    """Why a job ended, in Slurm's words: `slurm FAILED exit 3`, `slurm TIMEOUT (time limit 1 min)`."""
    if record.state == "TIMEOUT":
        return f"slurm TIMEOUT (time limit {limit_min} min)" if limit_min else "slurm TIMEOUT"
    words = [f"slurm {record.state}"]
    if record.exit_code:
        words.append(f"exit {record.exit_code}")
    if record.signal:
        words.append(f"signal {record.signal}")
    if record.reason and record.reason != "NonZeroExitCode":
        words.append(f"({record.reason})")
    return " ".join(words)


class SlurmClient:
    """Slurm's client commands, run with the launcher's environment additions (SLURM_CONF, ...)."""

    def __init__(self, env: dict[str, str] | None = None):
        self.env = dict(env or {})

    def call(
        self, *args: str, cwd: Path | None = None, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(
                list(args),
                capture_output=True,
                text=True,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env, **(extra_env or {})},
            )
        except FileNotFoundError:
            return subprocess.CompletedProcess(args, 127, "", f"{args[0]} is not on PATH")

    def run(
        self, *args: str, check: bool = True, cwd: Path | None = None, extra_env: dict[str, str] | None = None
    ) -> str:
        """The command's output; a failure raises SlurmError, or reads as no output with check=False."""
        proc = self.call(*args, cwd=cwd, extra_env=extra_env)
        if check and proc.returncode != 0:
            raise SlurmError(f"{shlex.join(args[:2])} failed (exit {proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout if proc.returncode == 0 else ""

    def record(self, job_id: str) -> SlurmRecord | None:
        """The freshest record: the queue, then the controller's memory, then accounting."""
        return self._queued(job_id) or self._shown(job_id) or self._accounted(job_id)

    def _queued(self, job_id: str) -> SlurmRecord | None:
        lines = self.run("squeue", "-h", "-j", job_id, "-o", "%T|%S|%e", check=False).splitlines()
        if not lines:
            return None
        state, start, end = lines[0].split("|")
        running = _STATES.get(state) == JobState.RUNNING
        return _record(state, start=start if running else "", end=end if running else "")

    def _shown(self, job_id: str) -> SlurmRecord | None:
        fields = dict(re.findall(r"(\S+?)=(\S*)", self.run("scontrol", "-o", "show", "job", job_id, check=False)))
        if "JobState" not in fields:
            return None
        return _record(
            fields["JobState"],
            fields.get("ExitCode", ""),
            fields.get("Reason", ""),
            fields.get("SubmitTime", ""),
            fields.get("StartTime", ""),
            fields.get("EndTime", ""),
        )

    def _accounted(self, job_id: str) -> SlurmRecord | None:
        for source in ([], ["-c"]):  # the accounting database, then the job-completion file
            out = self.run(
                "sacct",
                *source,
                "-X",
                "-j",
                job_id,
                "-P",
                "-n",
                "-o",
                "jobid,state,exitcode,submit,start,end",
                check=False,
            )
            for line in out.splitlines():
                jid, state, exit_status, submit, start, end = line.split("|")
                if jid == job_id:
                    return _record(state, exit_status, "", submit, start, end)
        return None

    def cancel(self, job_id: str, wait_s: float) -> None:
        """`scancel` this one job (or step, `<job>.<step>`), then give it `wait_s` to leave the queue."""
        self.run("scancel", job_id, check=False)
        deadline = time.time() + wait_s
        while time.time() < deadline and self._listed(job_id):
            time.sleep(0.2)

    def _listed(self, job_id: str) -> bool:
        steps = ["-s"] if "." in job_id else []
        return bool(self.run("squeue", "-h", *steps, "-j", job_id, "-o", "%i", check=False).strip())


# -- jobs --------------------------------------------------------------------------------------------


class SlurmJob(PolledJob):
    """A job submitted with sbatch (a generated script, or ray.sub), followed by its Slurm job id."""

    def __init__(
        self,
        client: SlurmClient,
        job_id: str,
        *,
        log_path: Path,
        command: str,
        timeout_s: float | None,
        submitted_at: float,
        poll_s: float,
        overshoot_s: float,
        grace_s: float,
    ):
        super().__init__()
        self.client = client
        self.job_id = job_id
        self.log_path = log_path
        self.command = command
        self.timeout_s = timeout_s
        self.submitted_at = submitted_at
        self.poll_s = poll_s
        self.overshoot_s = overshoot_s
        self.grace_s = grace_s
        self.overrun_note = f"Slurm had not ended it {format_duration(overshoot_s)} later; cancelled"
        self._record: SlurmRecord | None = None

    def read_state(self) -> JobState | None:
        """The freshest record's state; None while no Slurm command knows the job."""
        record = self.client.record(self.job_id)
        self._record = record or self._record
        return record.job_state if record else None

    def started_at(self) -> float | None:
        return self._record.start if self._record else None

    def halt(self) -> None:
        self.client.cancel(self.job_id, self.grace_s)
        self.state()  # what Slurm says once the job has left the queue

    def handle(self) -> dict:
        return {
            "job_id": self.job_id,
            "log_path": str(self.log_path),
            "command": self.command,
            "timeout_s": self.timeout_s,
            "submitted_at": self.submitted_at,
        }

    def result(self) -> JobResult:
        """How the job ended (or stands): Slurm's verdict, unless we stopped it ourselves."""
        rec = self._record
        now = time.time()
        if rec is None or self.lost:
            return JobResult(
                JobState.UNKNOWN,
                None,
                f"slurm job {self.job_id} is unknown to squeue, scontrol and sacct",
                0.0,
                now - self.submitted_at,
            )
        state, reason = self._ended or (rec.job_state, describe(rec, _minutes(self.timeout_s)))
        end = rec.end if rec.job_state.finished and rec.end else now
        submit = rec.submit or self.submitted_at
        queue_s = (rec.start or end) - submit
        return JobResult(
            state, rec.exit_code, reason, max(0.0, end - rec.start) if rec.start else 0.0, max(0.0, queue_s)
        )


class SrunJob(Job):
    """A step started with `srun --jobid=<allocation>`: a local process (its exit code is the step's), plus
    the step id Slurm gives it, read from srun's own verbose output."""

    def __init__(
        self,
        local: LocalJob,
        client: SlurmClient,
        allocation: str,
        log_path: Path,
        srun_log: Path,
        step: str | None = None,
    ):
        self.local = local
        self.client = client
        self.allocation = allocation
        self.log_path = log_path
        self.command = local.command
        self.srun_log = srun_log
        self._step = step

    @property
    def job_id(self) -> str:  # type: ignore[override]  # known once srun says it
        if self._step is None and self.srun_log.exists():
            found = re.search(r"launching (?:StepId=)?\d+\.(\d+)", self.srun_log.read_text(errors="replace"))
            self._step = found.group(1) if found else None
        return f"{self.allocation}.{self._step}" if self._step is not None else self.allocation

    def state(self) -> JobState:
        return self.local.state()

    def wait(self, poll_s: float | None = None, should_stop=None) -> JobResult:
        result = self.local.wait(poll_s or 0.2, should_stop)
        if result.state in (JobState.TIMEOUT, JobState.CANCELLED):
            self._cancel_step()
        return replace(result, peak_memory_gb=None)  # srun's own memory says nothing about the step's

    def cancel(self, reason: str) -> None:
        self._cancel_step()
        self.local.cancel(reason)

    def handle(self) -> dict:
        return {
            "job_id": self.job_id,
            "allocation": self.allocation,
            "local": self.local.handle(),
            "log_path": str(self.log_path),
            "srun_log": str(self.srun_log),
        }

    def _cancel_step(self) -> None:
        """A killed srun may leave its step running: end the step itself, by its id."""
        if "." in self.job_id:
            self.client.cancel(self.job_id, self.local.grace_s)


# -- the launcher ------------------------------------------------------------------------------------


class SlurmLauncher(Launcher):
    """Slurm, in one of three modes: `batch` (one generated sbatch script per run), `ray.sub` (NeMo-RL's
    multi-node Ray cluster script) or `interactive` (one allocation, one srun step per run)."""

    name = "slurm"

    def __init__(
        self,
        mode: str = "batch",
        account: str | None = None,
        partition: str | None = None,
        nodes: int = 1,
        gpus_per_node: int = 0,
        cpus_per_task: int = 1,
        extra_sbatch: tuple[str, ...] = (),
        container: str | None = None,
        mounts: str | None = None,
        ray_sub: str = "ray.sub",
        env: dict[str, str] | None = None,
        poll_s: float = 5.0,
        time_limit: str | None = None,
        overshoot_s: float = 120.0,
        grace_s: float = GRACE_S,
    ):
        """`env`: additions to the environment of Slurm's commands (SLURM_CONF, ...), which jobs inherit.
        `extra_sbatch`: more options, also given to salloc in interactive mode. `time_limit`: the interactive
        allocation's `--time` (default: the partition's). `overshoot_s`: how long past its limit a job may run
        before it is cancelled here (Slurm checks limits about every 30 s, plus its KillWait). `grace_s`: how
        long a cancelled job or step is given to end."""
        if mode not in MODES:
            raise ValueError(f"unknown Slurm mode {mode!r}: use one of {', '.join(MODES)}")
        self.mode = mode
        self.account, self.partition, self.nodes = account, partition, nodes
        self.gpus_per_node, self.cpus_per_task, self.extra_sbatch = gpus_per_node, cpus_per_task, tuple(extra_sbatch)
        self.container, self.mounts, self.ray_sub = container, mounts, ray_sub
        self.client = SlurmClient(env)
        self.poll_s, self.time_limit, self.overshoot_s, self.grace_s = poll_s, time_limit, overshoot_s, grace_s
        self.allocation: str | None = None
        self._allocating = threading.Lock()  # experiments run in parallel threads share one allocation

    def gpus_held(self) -> float:
        return self.nodes * self.gpus_per_node

    # -- submit ------------------------------------------------------------------------------------
    def submit(self, spec: RunSpec) -> Job:
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        if self.mode == "interactive":
            return self._srun(spec)
        if self.mode == "ray.sub":
            env, argv = self.ray_sub_command(spec)
            command = command_line(env, argv)
        else:
            script = spec.run_dir / "submit.sbatch"
            script.write_text(self.batch_script(spec))
            env, argv, command = {}, ["sbatch", "--parsable", str(script)], str(script)
        submitted = time.time()
        job_id = self.client.run(*argv, cwd=spec.cwd, extra_env=env).strip().split(";")[0]
        log_path = spec.run_dir / f"{job_id}-logs" / "ray-driver.log" if self.mode == "ray.sub" else spec.log_path
        return self._job(job_id, log_path, command, spec.timeout_s, submitted)

    def resources(self) -> list[str]:
        """Options every mode asks Slurm for (sbatch and salloc take the same spelling)."""
        options = [f"--account={self.account}"] if self.account else []
        options += [f"--partition={self.partition}"] if self.partition else []
        options.append(f"--nodes={self.nodes}")
        options += [f"--gres=gpu:{self.gpus_per_node}"] if self.gpus_per_node > 0 else []
        options += [f"--cpus-per-task={self.cpus_per_task}"] if self.mode != "ray.sub" else []
        return options + list(self.extra_sbatch)

    def sbatch_options(self, spec: RunSpec) -> list[str]:
        minutes = _minutes(spec.timeout_s)
        return [
            f"--job-name={spec.name}",
            f"--output={spec.log_path}",
            "--open-mode=append",
            *([f"--time={minutes}"] if minutes else []),
            f"--chdir={spec.cwd}",
            *self.resources(),
            "--export=ALL",
        ]

    def batch_script(self, spec: RunSpec) -> str:
        """The script sbatch runs: options as #SBATCH lines, the env additions, then the command."""
        lines = ["#!/bin/bash", *(f"#SBATCH {option}" for option in self.sbatch_options(spec))]
        lines += [f"export {k}={shell_word(v)}" for k, v in {"PYTHONUNBUFFERED": "1", **spec.env}.items()]
        return "\n".join([*lines, f"exec {shell_command(spec.argv)}", ""])

    def rendered(self, spec: RunSpec) -> str | None:
        return self.batch_script(spec) if self.mode == "batch" else None

    def ray_sub_command(self, spec: RunSpec) -> tuple[dict[str, str], list[str]]:
        """NeMo-RL's pattern, `COMMAND=... CONTAINER=... MOUNTS=... sbatch ... ray.sub`: the environment
        additions and the sbatch argument list. ray.sub writes the driver log under BASE_LOG_DIR."""
        env = {
            "COMMAND": shell_command(spec.argv),
            "CONTAINER": self.container or "",
            "MOUNTS": self.mounts or "",
            "BASE_LOG_DIR": str(spec.run_dir),
        }
        env |= {"GPUS_PER_NODE": str(self.gpus_per_node)} if self.gpus_per_node > 0 else {}
        return {**env, **spec.env}, ["sbatch", "--parsable", *self.sbatch_options(spec), self.ray_sub]

    def _job(self, job_id: str, log_path: Path, command: str, timeout_s: float | None, submitted: float) -> SlurmJob:
        return SlurmJob(
            self.client,
            job_id,
            log_path=log_path,
            command=command,
            timeout_s=timeout_s,
            submitted_at=submitted,
            poll_s=self.poll_s,
            overshoot_s=self.overshoot_s,
            grace_s=self.grace_s,
        )

    # -- interactive -------------------------------------------------------------------------------
    def _srun(self, spec: RunSpec) -> SrunJob:
        with self._allocating:
            allocation = self._allocation()
        self._check_fits(allocation, spec)
        minutes = _minutes(spec.timeout_s)
        srun_log = spec.run_dir / "srun.log"
        argv = [
            "srun",
            f"--jobid={allocation}",
            f"--job-name={spec.name}",
            f"--chdir={spec.cwd}",
            f"--output={spec.log_path}",
            "--open-mode=append",
            "--verbose",
            *([f"--time={minutes}"] if minutes else []),
            "bash",
            "-c",
            f"exec {shell_command(spec.argv)}",
        ]
        local = LocalLauncher(self.grace_s).submit(
            replace(spec, argv=argv, log_path=srun_log, gpus=None, env={**self.client.env, **spec.env})
        )
        job = SrunJob(local, self.client, allocation, spec.log_path, srun_log)
        deadline = time.time() + 10.0  # the step id is printed as soon as the step launches
        while "." not in job.job_id and local.state() == JobState.RUNNING and time.time() < deadline:
            time.sleep(0.05)
        return job

    def _allocation(self) -> str:
        """The held allocation, or a new one (`salloc --no-shell` returns once it is granted)."""
        if self.allocation and self._allocation_record(self.allocation):
            return self.allocation
        argv = [
            "salloc",
            "--no-shell",
            f"--job-name={ALLOCATION_NAME}",
            *([f"--time={self.time_limit}"] if self.time_limit else []),
            *self.resources(),
        ]
        proc = self.client.call(*argv)
        granted = re.search(r"Granted job allocation (\d+)", proc.stderr)
        if not granted:
            raise SlurmError(f"salloc failed (exit {proc.returncode}): {proc.stderr.strip()}")
        self.allocation = granted.group(1)
        return self.allocation

    def _allocation_record(self, allocation: str) -> SlurmRecord | None:
        record = self.client.record(allocation)
        return record if record and record.job_state == JobState.RUNNING else None

    def _check_fits(self, allocation: str, spec: RunSpec) -> None:
        """A run that would outlive the allocation is refused rather than killed half-way."""
        record = self._allocation_record(allocation)
        left = (record.end - time.time()) if record and record.end else math.inf
        if spec.timeout_s is not None and spec.timeout_s > left:
            raise SlurmError(
                f"allocation {allocation} ends in {format_duration(left)}: a run limited to "
                f"{format_duration(spec.timeout_s)} cannot finish in it (raise time_limit, or "
                "shorten the per-experiment limit)"
            )

    # -- the rest of the interface -----------------------------------------------------------------
    def reattach(self, handle: dict) -> Job | None:
        """A job by its id, running or finished; for a step, its srun process (and its allocation)."""
        if "allocation" in handle:
            local = LocalLauncher(self.grace_s).reattach(handle["local"])
            if local is None:
                return None
            self.allocation = self.allocation or handle["allocation"]
            step = handle["job_id"].partition(".")[2] or None
            return SrunJob(
                local, self.client, handle["allocation"], Path(handle["log_path"]), Path(handle["srun_log"]), step
            )
        if self.client.record(handle["job_id"]) is None:
            return None
        return self._job(
            handle["job_id"], Path(handle["log_path"]), handle["command"], handle["timeout_s"], handle["submitted_at"]
        )

    def missing_tools(self) -> list[str]:
        return [tool for tool in self._tools() if shutil.which(tool, path=self.client.env.get("PATH")) is None]

    def _tools(self) -> tuple[str, ...]:
        return (("salloc", "srun") if self.mode == "interactive" else ("sbatch",)) + (
            "squeue",
            "scontrol",
            "scancel",
            "sinfo",
        )

    def preflight(self) -> list[tuple[bool, str]]:
        tools = self._tools()
        missing = self.missing_tools()
        if missing:
            return [(False, f"slurm: {', '.join(missing)} not on PATH")]
        if not self.client.run("sinfo", "-h", "-o", "%P", check=False):
            return [(False, "slurm: sinfo cannot reach the controller (check SLURM_CONF, or run on a login node)")]
        return [(True, f"slurm: {', '.join(tools)} found; the controller answers")] + self._setting_checks()

    def _setting_checks(self) -> list[tuple[bool, str]]:
        """The partition exists; an account is given where the cluster enforces one (best effort: from
        AccountingStorageEnforce); ray.sub has its container and mounts."""
        checks = []
        if self.partition:
            known = bool(self.client.run("sinfo", "-h", "-p", self.partition, "-o", "%P", check=False).strip())
            checks.append(
                (known, f"slurm: partition {self.partition} " + ("exists" if known else "not found by sinfo"))
            )
        enforce = re.search(
            r"AccountingStorageEnforce\s*=\s*(\S+)", self.client.run("scontrol", "show", "config", check=False)
        )
        if not self.account and enforce and "associations" in enforce.group(1):
            checks.append((False, "slurm: the cluster enforces accounts (AccountingStorageEnforce): give account="))
        if self.mode == "ray.sub" and not (self.container and self.mounts):
            checks.append((False, "slurm: ray.sub needs its CONTAINER and MOUNTS: give container= and mounts="))
        return checks

    def close(self) -> None:
        """Release the interactive allocation."""
        if self.allocation:
            self.client.cancel(self.allocation, self.grace_s)
            self.allocation = None
