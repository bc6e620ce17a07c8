"""Runs on Kubernetes: through NeMo-RL's `nrl-k8s` (one ephemeral KubeRay RayJob per run) when it is
installed and an infra file is given, otherwise as a plain batch/v1 Job running the command.

Both are driven by their command-line tools (`nrl-k8s`, `kubectl`), so whatever kubeconfig and context the
person uses applies. Secrets never enter job.yaml: a `${NAME}` reference becomes Kubernetes' own `$(NAME)`,
filled from a Secret by secretKeyRef; for nrl-k8s it is escaped as `\\${NAME}` so OmegaConf leaves it to the
pod's shell. The plain Job's limit is `activeDeadlineSeconds`; a RayJob's is enforced here.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from abc import abstractmethod
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.launcher import JobResult, JobState, Launcher, PolledJob, RunSpec
from nrl_autoresearch.core.redact import SECRET_REF, redact
from nrl_autoresearch.launchers.local import GRACE_S

RUN_LABEL = "autoresearch/run"
_RAY_STATES = {
    "PENDING": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "SUCCEEDED": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "STOPPED": JobState.CANCELLED,
}


class KubernetesError(RuntimeError):
    """kubectl or nrl-k8s refused."""


def object_name(run_name: str) -> str:
    """A DNS-1123 name, unique per submission (an earlier object of the same run may still exist)."""
    base = re.sub(r"[^a-z0-9-]+", "-", run_name.lower()).strip("-")[:40].rstrip("-") or "run"
    return f"{base}-{uuid.uuid4().hex[:6]}"


def _pod_arg(arg: str) -> str:
    """`${NAME}` becomes `$(NAME)`, which Kubernetes fills from the container's env; a literal `$(` is
    escaped as `$$(` so Kubernetes leaves it alone."""
    pieces = SECRET_REF.split(arg)
    return "".join(p.replace("$(", "$$(") if i % 2 == 0 else f"$({p})" for i, p in enumerate(pieces))


def omegaconf_escaped(arg: str) -> str:
    """`${NAME}` becomes `\\${NAME}`: OmegaConf passes it through to the pod's shell instead of resolving it."""
    return SECRET_REF.sub(lambda m: "\\" + m.group(0), arg)


def _epoch(stamp: str | None) -> float | None:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else None


def _run(argv: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise KubernetesError(f"{' '.join(argv[:3])} failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


@dataclass(frozen=True)
class KubeStatus:
    """Where a run stands, read from its objects: state, exit code, why, and when it was created, started
    and ended (epoch seconds)."""

    state: JobState
    exit_code: int | None = None
    reason: str = ""
    created: float | None = None
    start: float | None = None
    end: float | None = None


def job_status(items: list[dict]) -> KubeStatus | None:
    """A batch/v1 Job's status from `kubectl get jobs,pods -l autoresearch/run=NAME -o json` items: the
    Job's conditions say how it ended, its pod's container when it ran and with which exit code."""
    job = next((i for i in items if i.get("kind") == "Job"), None)
    if job is None:
        return None
    pods = [i for i in items if i.get("kind") == "Pod"]
    container: dict = next(iter((pods[-1].get("status") or {}).get("containerStatuses") or []), {}) if pods else {}
    ran = {**(container.get("state") or {}).get("running", {}), **(container.get("state") or {}).get("terminated", {})}
    condition = next(
        (
            c
            for c in (job.get("status") or {}).get("conditions", [])
            if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        ),
        None,
    )
    if condition is None:
        state = JobState.RUNNING if ran.get("startedAt") else JobState.PENDING
    elif condition["type"] == "Complete":
        state = JobState.COMPLETED
    elif condition.get("reason") == "DeadlineExceeded":
        state = JobState.TIMEOUT
    else:
        state = JobState.OUT_OF_MEMORY if ran.get("reason") == "OOMKilled" else JobState.FAILED
    reason = "" if condition is None else f"kubernetes {condition.get('reason') or condition['type']}"
    if ran.get("exitCode"):
        reason += f" exit {ran['exitCode']}" + (f" ({ran['reason']})" if ran.get("reason") else "")
    end = _epoch(ran.get("finishedAt") or (condition or {}).get("lastTransitionTime"))
    return KubeStatus(
        state,
        ran.get("exitCode"),
        reason.strip(),
        _epoch(job["metadata"].get("creationTimestamp")),
        _epoch(ran.get("startedAt")),
        end if condition else None,
    )


def rayjob_status(rayjob: dict) -> KubeStatus:
    """A KubeRay RayJob's status: its Ray job's, or Failed when the deployment failed before the job ran."""
    status = rayjob.get("status") or {}
    state = _RAY_STATES.get(status.get("jobStatus") or "PENDING", JobState.UNKNOWN)
    if status.get("jobDeploymentStatus") == "Failed" and not state.finished:
        state = JobState.FAILED
    message = (status.get("message") or "").strip().splitlines()[:1]
    reason = "" if not state.finished else f"rayjob {status.get('jobStatus') or status.get('jobDeploymentStatus')}"
    reason += f": {message[0]}" if message and state.finished else ""
    return KubeStatus(
        state,
        None,
        reason,
        _epoch(rayjob["metadata"].get("creationTimestamp")),
        _epoch(status.get("startTime")),
        _epoch(status.get("endTime")) if state.finished else None,
    )


class LogFollower:
    """A log command (`kubectl logs -f`, `nrl-k8s job logs`) writing into run.log, in a session of its own
    so it can be ended by its own process group once the run is over."""

    def __init__(self, argv: list[str], path: Path, cwd: Path | None):
        with open(path, "w") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True
            )

    def finish(self, timeout_s: float) -> None:
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait()


class KubeRun(PolledJob):
    """What both kinds of run share: polling the object, the limit, cancelling, the log follower."""

    def __init__(
        self,
        launcher: KubernetesLauncher,
        name: str,
        *,
        log_path: Path,
        command: str,
        cwd: Path,
        timeout_s: float | None,
    ):
        super().__init__()
        self.launcher = launcher
        self.job_id = name
        self.log_path = log_path
        self.command = command
        self.cwd = cwd
        self.timeout_s = timeout_s
        self.poll_s = launcher.poll_s
        self._status: KubeStatus | None = None
        self._follower: LogFollower | None = None

    @abstractmethod
    def read_status(self) -> KubeStatus | None: ...

    @abstractmethod
    def log_argv(self) -> list[str] | None:
        """The command that follows the run's log, once there is one to follow."""

    def state(self) -> JobState:
        return self._ended[0] if self._ended else super().state()

    def finish_log(self) -> None:
        if self._follower:
            self._follower.finish(self.launcher.grace_s)

    def handle(self) -> dict:
        return {
            "name": self.job_id,
            "log_path": str(self.log_path),
            "command": self.command,
            "cwd": str(self.cwd),
            "timeout_s": self.timeout_s,
        }

    def result(self) -> JobResult:
        status = self._status
        if status is None or self.lost:
            status = KubeStatus(JobState.UNKNOWN, reason=f"{self.job_id} could not be read")
        state, reason = self._ended or (status.state, status.reason)
        end = status.end or time.time()
        run_s = end - status.start if status.start else 0.0
        queue_s = (status.start or end) - status.created if status.created else 0.0
        return JobResult(state, status.exit_code, reason, max(0.0, run_s), max(0.0, queue_s))

    def read_state(self) -> JobState | None:
        try:
            status = self.read_status()
        except KubernetesError:
            status = None
        self._status = status or self._status
        self._follow_log()
        return status.state if status else None

    def started_at(self) -> float | None:
        return self._status.start if self._status else None

    def _follow_log(self) -> None:
        following = self._follower is not None and self._follower.proc.poll() is None
        argv = self.log_argv() if not following and self._status and self._status.start else None
        if argv:  # (re)started from the beginning: a follower that dropped out loses nothing
            self._follower = LogFollower(argv, self.log_path, self.cwd)


class PodJob(KubeRun):
    """A plain batch/v1 Job: one pod, no retry, the limit as activeDeadlineSeconds."""

    def read_status(self) -> KubeStatus | None:
        out = _run(self.launcher.kubectl_argv("get", "jobs,pods", "-l", f"{RUN_LABEL}={self.job_id}", "-o", "json"))
        return job_status(json.loads(out).get("items", []))

    def log_argv(self) -> list[str]:
        return self.launcher.kubectl_argv("logs", "-f", f"job/{self.job_id}")

    def halt(self) -> None:
        _run(self.launcher.kubectl_argv("delete", "job", self.job_id, "--wait=false"))


class RayJobRun(KubeRun):
    """An ephemeral KubeRay RayJob started by `nrl-k8s run`; its Ray job is stopped and its log read with
    `nrl-k8s job stop|logs <jobId> <recipe> --infra <infra> --role training`."""

    def __init__(self, launcher: KubernetesLauncher, name: str, *, recipe: str, **kwargs):
        super().__init__(launcher, name, **kwargs)
        self.recipe = recipe
        self._ray_job_id: str | None = None

    def read_status(self) -> KubeStatus:
        rayjob = json.loads(_run(self.launcher.kubectl_argv("get", "rayjob", self.job_id, "-o", "json")))
        self._ray_job_id = (rayjob.get("status") or {}).get("jobId") or self._ray_job_id
        return rayjob_status(rayjob)

    def log_argv(self) -> list[str] | None:
        return self.launcher.nrl_k8s_job("logs", self._ray_job_id, self.recipe) if self._ray_job_id else None

    def halt(self) -> None:
        """Stop the Ray job; a RayJob still bringing its cluster up has none yet, so it is deleted instead."""
        if self._ray_job_id:
            _run(self.launcher.nrl_k8s_job("stop", self._ray_job_id, self.recipe), cwd=self.cwd)
        else:
            _run(self.launcher.kubectl_argv("delete", "rayjob", self.job_id, "--wait=false"))

    def handle(self) -> dict:
        return {**super().handle(), "recipe": self.recipe}


class KubernetesLauncher(Launcher):
    """Kubernetes, through nrl-k8s (RayJob per run) or plain batch/v1 Jobs."""

    def __init__(
        self,
        image: str | None = None,
        namespace: str = "default",
        infra: str | None = None,
        gpus: int = 0,
        cpu: str | None = None,
        memory: str | None = None,
        volumes: tuple[str, ...] = (),
        nrl_k8s: str = "nrl-k8s",
        kubectl: str = "kubectl",
        secret: str | None = None,
        poll_s: float = 5.0,
        grace_s: float = GRACE_S,
    ):
        """`volumes`: `SOURCE:MOUNT[:ro]`, a PersistentVolumeClaim name or an absolute host path. `secret`:
        the Secret whose keys fill `${NAME}` references of the command. `infra`: an nrl-k8s infra file
        (its namespace wins over `namespace`)."""
        self.image, self.infra, self.gpus, self.cpu, self.memory = image, infra, gpus, cpu, memory
        self.volumes = [_split_volume(v) for v in volumes]
        self.nrl_k8s, self.kubectl, self.secret = nrl_k8s, kubectl, secret
        self.poll_s, self.grace_s = poll_s, grace_s
        self.namespace = self._infra_namespace() or namespace

    def _infra_namespace(self) -> str | None:
        path = Path(self.infra) if self.infra else None
        return (yaml.safe_load(path.read_text()) or {}).get("namespace") if path and path.is_file() else None

    @property
    def uses_nrl_k8s(self) -> bool:
        return bool(self.infra and shutil.which(self.nrl_k8s))

    @property
    def name(self) -> str:  # type: ignore[override]  # the ledger's launcher column: the tool that ran the job
        return "nrl-k8s" if self.uses_nrl_k8s else "k8s"

    def kubectl_argv(self, *args: str) -> list[str]:
        return [self.kubectl, "-n", self.namespace, *args]

    def nrl_k8s_job(self, action: str, ray_job_id: str, recipe: str) -> list[str]:
        return [self.nrl_k8s, "job", action, ray_job_id, recipe, "--infra", str(self.infra), "--role", "training"]

    def gpus_held(self) -> float:
        return self.gpus

    # -- submit ------------------------------------------------------------------------------------
    def submit(self, spec: RunSpec) -> KubeRun:
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        name = object_name(spec.name)
        common: dict[str, Any] = {"log_path": spec.log_path, "cwd": spec.cwd, "timeout_s": spec.timeout_s}
        if self.uses_nrl_k8s:
            argv = self.nrl_k8s_run(spec, name)
            _run(argv, cwd=spec.cwd)
            return RayJobRun(self, name, recipe=argv[2], command=redact(shlex.join(argv)), **common)  # run <recipe>
        manifest = spec.run_dir / "job.yaml"
        manifest.write_text(yaml.safe_dump(self.job_manifest(spec, name), sort_keys=False))
        _run([self.kubectl, "apply", "-f", str(manifest)])
        return PodJob(self, name, command=str(manifest), **common)

    def rendered(self, spec: RunSpec) -> str:
        name = object_name(spec.name)
        if self.uses_nrl_k8s:
            return shlex.join(self.nrl_k8s_run(spec, name))
        return yaml.safe_dump(self.job_manifest(spec, name), sort_keys=False)

    def nrl_k8s_run(self, spec: RunSpec, name: str) -> list[str]:
        """`nrl-k8s run <recipe> --infra <infra> --rayjob --rayjob-name <name> --no-wait [overrides]`: the
        recipe is the command's `--config`, the overrides its `key=value` arguments."""
        recipe, overrides = _recipe_and_overrides(spec.argv)
        return [
            self.nrl_k8s,
            "run",
            recipe,
            "--infra",
            str(self.infra),
            "--rayjob",
            "--rayjob-name",
            name,
            "--no-wait",
            *map(omegaconf_escaped, overrides),
        ]

    def job_manifest(self, spec: RunSpec, name: str) -> dict:
        """A batch/v1 Job running the command once: no restart, no retry, the limit as a deadline."""
        if not self.image:
            raise UsageError("the k8s launcher runs a plain Job without nrl-k8s: give image=")
        labels = {RUN_LABEL: name}
        pod: dict = {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": math.ceil(self.grace_s),
            "containers": [self._container(spec)],
        }
        if self.volumes:
            pod["volumes"] = [_volume(i, source) for i, (source, _, _) in enumerate(self.volumes)]
        job_spec: dict = {"backoffLimit": 0}
        if spec.timeout_s:
            job_spec["activeDeadlineSeconds"] = math.ceil(spec.timeout_s)
        job_spec["template"] = {"metadata": {"labels": dict(labels)}, "spec": pod}  # copies: no YAML anchors
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
            "spec": job_spec,
        }

    def _container(self, spec: RunSpec) -> dict:
        container: dict = {
            "name": "run",
            "image": self.image,
            "command": [_pod_arg(a) for a in spec.argv],
            "workingDir": str(spec.cwd),
            "env": self._env(spec),
        }
        limits: dict[str, str | int] = {k: v for k, v in (("cpu", self.cpu), ("memory", self.memory)) if v}
        requests = dict(limits)
        if self.gpus:
            limits["nvidia.com/gpu"] = self.gpus
        if limits:
            container["resources"] = {"limits": limits, **({"requests": requests} if requests else {})}
        if self.volumes:
            container["volumeMounts"] = [
                {"name": f"vol-{i}", "mountPath": mount, **({"readOnly": True} if ro else {})}
                for i, (_, mount, ro) in enumerate(self.volumes)
            ]
        return container

    def _env(self, spec: RunSpec) -> list[dict]:
        names = sorted({name for arg in spec.argv for name in SECRET_REF.findall(arg)})
        if names and not self.secret:
            raise UsageError(
                f"the command refers to {', '.join('${' + n + '}' for n in names)}: give secret=<a "
                "Kubernetes Secret holding them>, so their values never enter job.yaml"
            )
        env = [{"name": k, "value": v} for k, v in {"PYTHONUNBUFFERED": "1", **spec.env}.items()]
        return env + [{"name": n, "valueFrom": {"secretKeyRef": {"name": self.secret, "key": n}}} for n in names]

    # -- the rest of the interface -----------------------------------------------------------------
    def reattach(self, handle: dict) -> KubeRun | None:
        """The run by its object's name, while the object exists."""
        common: dict[str, Any] = {
            "log_path": Path(handle["log_path"]),
            "command": handle["command"],
            "cwd": Path(handle["cwd"]),
            "timeout_s": handle["timeout_s"],
        }
        job = (
            RayJobRun(self, handle["name"], recipe=handle["recipe"], **common)
            if "recipe" in handle
            else PodJob(self, handle["name"], **common)
        )
        try:
            return job if job.read_status() else None
        except KubernetesError:
            return None

    def preflight(self) -> list[tuple[bool, str]]:
        if self.infra and not shutil.which(self.nrl_k8s):
            return [(False, f"k8s: infra= given but {self.nrl_k8s} is not on PATH (uv tool install ./infra/nrl_k8s)")]
        if not shutil.which(self.kubectl):
            return [(False, f"k8s: {self.kubectl} is not on PATH")]
        if not self.infra and not self.image:
            return [(False, "k8s: a plain Job needs image=")]
        try:
            _run(self.kubectl_argv("auth", "can-i", "create", "rayjobs" if self.infra else "jobs"))
        except KubernetesError as err:
            return [(False, f"k8s: cannot create in namespace {self.namespace}: {err}")]
        return [(True, f"k8s: {'nrl-k8s RayJobs' if self.infra else 'batch/v1 Jobs'} in namespace {self.namespace}")]


def _recipe_and_overrides(argv: list[str]) -> tuple[str, list[str]]:
    """The `--config <recipe>` of a NeMo-RL command and its Hydra overrides (`key=value`, `+key=`, `~key`)."""
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            recipe, rest = argv[i + 1], argv[i + 2 :]
            break
        if arg.startswith("--config="):
            recipe, rest = arg.split("=", 1)[1], argv[i + 1 :]
            break
    else:
        raise UsageError("nrl-k8s runs a NeMo-RL recipe: the command needs --config <recipe.yaml>")
    return recipe, [a for a in rest if not a.startswith("-") and ("=" in a or a.startswith("~"))]


def _split_volume(text: str) -> tuple[str, str, bool]:
    source, _, rest = text.partition(":")
    mount, _, mode = rest.partition(":")
    if not source or not mount.startswith("/"):
        raise UsageError(f"bad volume {text!r}: give SOURCE:/mount/path[:ro] (a PVC name or an absolute host path)")
    return source, mount, mode == "ro"


def _volume(index: int, source: str) -> dict:
    if source.startswith("/"):
        return {"name": f"vol-{index}", "hostPath": {"path": source}}
    return {"name": f"vol-{index}", "persistentVolumeClaim": {"claimName": source}}
