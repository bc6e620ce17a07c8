"""Runs on a Ray cluster through its Job Submission API (the dashboard's address).

The run's folder is uploaded as the job's working_dir, so its size is checked first, the way Ray measures
it (runtime_env excludes, .gitignore, .rayignore): over the limit, the upload would fail or crawl. The
entrypoint is shell text whose `${NAME}` references the job's shell expands from env_vars: a referenced
secret travels in the submission request only, never in a file we write. The job's log is streamed into
run.log while it runs and fetched whole once it ends, so the metric reader finds it complete.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from nrl_autoresearch.core.durable import replace_text
from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.launcher import JobResult, JobState, Launcher, PolledJob, RunSpec
from nrl_autoresearch.core.redact import SECRET_REF, redact, shell_command
from nrl_autoresearch.launchers.local import GRACE_S

RAY_MISSING = "the ray launcher needs Ray's job SDK: pip install 'nrl-autoresearch[ray]'"
_STATES = {
    "PENDING": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "SUCCEEDED": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "STOPPED": JobState.CANCELLED,
}


def connect(address: str):
    """A JobSubmissionClient (Ray imported only when a Ray launcher is used); it checks the address answers."""
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError as err:
        raise UsageError(RAY_MISSING) from err
    try:
        return JobSubmissionClient(address)
    except RuntimeError as err:  # core-only ray: "require the ray[default] installation"
        if "ray[default]" in str(err):
            raise UsageError(RAY_MISSING) from err
        raise


def upload_size(path: Path, excludes: list[str]) -> int:
    """Bytes Ray would upload from `path`, found by Ray's own traversal of it."""
    from ray._private.runtime_env.packaging import _dir_travel, _get_excludes

    sizes: dict[Path, int] = {}

    def add(item: Path) -> None:
        if item.is_file():
            sizes[item] = item.stat().st_size

    include_gitignore = os.environ.get("RAY_RUNTIME_ENV_IGNORE_GITIGNORE", "0") != "1"
    try:
        _dir_travel(path, [_get_excludes(path, excludes)], add, include_gitignore=include_gitignore)
    except TypeError:  # Ray before .rayignore support (late 2025) takes no include_gitignore
        _dir_travel(path, [_get_excludes(path, excludes)], add)  # type: ignore[call-arg]
    return sum(sizes.values())


class LogTail:
    """Streams a job's log into a file while it runs; `finish()` replaces it with the whole log once the job
    has ended (a stream that broke, or a reattached one that started late, loses nothing). The stream closes
    seconds after the job ends: it is not waited for, and writes on into the replaced file's old inode."""

    def __init__(self, client, job_id: str, path: Path):
        self.client, self.job_id, self.path = client, job_id, path
        out = open(path, "w")  # noqa: SIM115 (_follow closes it); opened here, so a late thread cannot truncate the finished log
        threading.Thread(target=asyncio.run, args=(self._follow(out),), daemon=True, name=f"ray-log-{job_id}").start()

    async def _follow(self, out) -> None:
        with out:
            try:
                async for lines in self.client.tail_job_logs(self.job_id):
                    out.write(lines)
                    out.flush()
            except (RuntimeError, OSError):  # a broken stream: finish() fetches the whole log anyway
                pass

    def finish(self) -> None:
        try:
            replace_text(self.path, self.client.get_job_logs(self.job_id))
        except (RuntimeError, ConnectionError):  # the cluster is gone: what was streamed is all there is
            pass


class RayJob(PolledJob):
    """A Ray job followed by its submission id."""

    def __init__(
        self,
        client,
        submission_id: str,
        *,
        log_path: Path,
        command: str,
        timeout_s: float | None,
        poll_s: float,
        grace_s: float,
    ):
        super().__init__()
        self.client = client
        self.job_id = submission_id
        self.log_path = log_path
        self.command = command
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.grace_s = grace_s
        self._info: Any = None  # Ray's JobDetails, once the Jobs API answered
        self._running_since: float | None = None
        self._saw_pending = False
        self._logs = LogTail(client, submission_id, log_path)

    overrun_note = "Ray job stopped"

    def handle(self) -> dict:
        return {
            "submission_id": self.job_id,
            "log_path": str(self.log_path),
            "command": self.command,
            "timeout_s": self.timeout_s,
        }

    def result(self) -> JobResult:
        info = self._info
        if info is None or self.lost:
            return JobResult(JobState.UNKNOWN, None, f"ray job {self.job_id}: the Jobs API does not answer", 0.0)
        status = info.status.value
        state, reason = self._ended or (_STATES[status], _describe(info))
        submitted = (info.start_time or 0) / 1000
        end = info.end_time / 1000 if info.end_time else time.time()
        started = self._running_since or submitted
        return JobResult(state, info.driver_exit_code, reason, max(0.0, end - started), max(0.0, started - submitted))

    def read_state(self) -> JobState | None:
        try:
            self._info = self.client.get_job_info(self.job_id)
        except (RuntimeError, ConnectionError):
            return None
        status = self._info.status.value
        if self._running_since is None and status == "RUNNING":  # first seen running: since now, or (reattached,
            # or started before the first poll) since it was submitted, which never grants more than the limit
            self._running_since = time.time() if self._saw_pending else self._info.start_time / 1000
        self._saw_pending |= status == "PENDING"
        return _STATES[status]

    def started_at(self) -> float | None:
        return self._running_since

    def finish_log(self) -> None:
        if self._info is not None:
            self._logs.finish()

    def halt(self) -> None:
        """stop_job (SIGTERM, then SIGKILL after Ray's own wait), then up to `grace_s` for it to end."""
        self.client.stop_job(self.job_id)
        deadline = time.time() + self.grace_s
        while not self.state().finished and time.time() < deadline:
            time.sleep(0.2)


def _describe(info) -> str:
    status = info.status.value
    if status == "FAILED":
        first = (info.message or "").split(", last available logs")[0].strip().splitlines()[:1]
        code = f" exit {info.driver_exit_code}" if info.driver_exit_code is not None else ""
        return f"ray FAILED{code}" + (f": {first[0]}" if first else "")
    return f"ray {status}"


class RayLauncher(Launcher):
    """A Ray cluster's Jobs API: one Ray job per run, its folder uploaded as working_dir."""

    name = "ray"

    def __init__(
        self,
        address: str,
        runtime_env: dict | None = None,
        entrypoint_num_cpus: float | None = None,
        entrypoint_num_gpus: float | None = None,
        upload_limit_mb: float = 100,
        poll_s: float = 2.0,
        grace_s: float = GRACE_S,
    ):
        """`address`: the dashboard URL (http://head:8265). `runtime_env`: merged into every job's (its
        `excludes` also count for the upload size). `grace_s`: how long a stopped job is given to end."""
        self.address = address
        self.runtime_env = dict(runtime_env or {})
        self.entrypoint_num_cpus = entrypoint_num_cpus
        self.entrypoint_num_gpus = entrypoint_num_gpus
        self.upload_limit_mb = upload_limit_mb
        self.poll_s = poll_s
        self.grace_s = grace_s
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = connect(self.address)
        return self._client

    def gpus_held(self) -> float:
        return self.entrypoint_num_gpus or 0

    def submit(self, spec: RunSpec) -> RayJob:
        self.check_upload(spec.cwd)
        entrypoint = shell_command(spec.argv)
        submission_id = f"{spec.name}-{uuid.uuid4().hex[:8]}"
        self.client.submit_job(
            entrypoint=entrypoint,
            submission_id=submission_id,
            runtime_env=self.job_runtime_env(spec),
            entrypoint_num_cpus=self.entrypoint_num_cpus,
            entrypoint_num_gpus=self.entrypoint_num_gpus,
        )
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        return self._job(submission_id, spec.log_path, redact(entrypoint), spec.timeout_s)

    def rendered(self, spec: RunSpec) -> str:
        """The job submission, secrets left out (they are named in the command, passed by value only at submit)."""
        return json.dumps(
            {"entrypoint": shell_command(spec.argv), "runtime_env": self.job_runtime_env(spec, with_secrets=False)},
            indent=2,
        )

    def job_runtime_env(self, spec: RunSpec, *, with_secrets: bool = True) -> dict:
        """The launcher's runtime_env with the run's folder and environment; a secret the command refers to
        is passed by value only when it is set here."""
        names = {name for arg in spec.argv for name in SECRET_REF.findall(arg)} if with_secrets else set()
        secrets = {name: os.environ[name] for name in sorted(names) if name in os.environ}
        env_vars = {**self.runtime_env.get("env_vars", {}), "PYTHONUNBUFFERED": "1", **spec.env, **secrets}
        return {**self.runtime_env, "working_dir": str(spec.cwd), "env_vars": env_vars}

    def check_upload(self, folder: Path) -> None:
        """Refuse a working_dir over the upload limit before Ray tries to zip and send it."""
        size = upload_size(folder, list(self.runtime_env.get("excludes", [])))
        if size > self.upload_limit_mb * 2**20:
            raise UsageError(
                f"{folder} holds {size / 2**20:.1f} MiB to upload, over the {self.upload_limit_mb:g} MiB limit of "
                "Ray's working_dir upload (upload_limit_mb): exclude big folders with runtime_env "
                "{'excludes': ['data/', 'checkpoints/']} or a .rayignore, or keep data and checkpoints on a "
                "shared filesystem outside the working directory"
            )

    def _job(self, submission_id: str, log_path: Path, command: str, timeout_s: float | None) -> RayJob:
        return RayJob(
            self.client,
            submission_id,
            log_path=log_path,
            command=command,
            timeout_s=timeout_s,
            poll_s=self.poll_s,
            grace_s=self.grace_s,
        )

    def reattach(self, handle: dict) -> RayJob | None:
        """The job by its submission id, running or finished, while the cluster remembers it."""
        try:
            self.client.get_job_info(handle["submission_id"])
        except RuntimeError:
            return None
        return self._job(handle["submission_id"], Path(handle["log_path"]), handle["command"], handle["timeout_s"])

    def preflight(self) -> list[tuple[bool, str]]:
        try:
            version = self.client.get_version()
        except UsageError as err:
            return [(False, f"ray: {err}")]
        except (ConnectionError, RuntimeError, ValueError) as err:
            return [(False, f"ray: the Jobs API at {self.address} does not answer: {err}")]
        return [(True, f"ray: the Jobs API at {self.address} answers (Ray {version})")]
