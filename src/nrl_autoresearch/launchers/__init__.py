"""Launchers, by the name given to --launcher. A new backend is one file and one line here.

The registry names each backend's module and class; a backend is imported when a campaign uses it (Ray's and
Kubernetes' clients are not needed to read a ledger)."""

from __future__ import annotations

import inspect
import shutil
import subprocess
from importlib import import_module

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.launcher import Launcher
from nrl_autoresearch.launchers.gpus import free_gpus

LAUNCHERS: dict[str, str] = {
    "local": "nrl_autoresearch.launchers.local:LocalLauncher",
    "slurm": "nrl_autoresearch.launchers.slurm:SlurmLauncher",
    "ray": "nrl_autoresearch.launchers.ray:RayLauncher",
    "k8s": "nrl_autoresearch.launchers.kubernetes:KubernetesLauncher",
}
CHOICES = ("auto", *LAUNCHERS)


def make_launcher(config: dict) -> Launcher:
    """Build the launcher a campaign names, with its options; a wrong option is a clear error."""
    name = config.get("name", "local")
    if name not in LAUNCHERS:
        raise UsageError(f"unknown --launcher {name!r}: use one of {', '.join(CHOICES)}")
    cls = launcher_class(name)
    options = {k: v for k, v in config.items() if k not in ("name", "chosen")}
    known = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise UsageError(f"unknown option {', '.join(unknown)} for the {name} launcher: it takes {', '.join(known)}")
    try:
        return cls(**options)
    except (TypeError, ValueError) as err:
        raise UsageError(f"bad options for the {name} launcher: {err}") from None


def launcher_class(name: str) -> type[Launcher]:
    """The backend class registered as `name`, imported now."""
    module, _, attr = LAUNCHERS[name].partition(":")
    return getattr(import_module(module), attr)


def parse_options(items: list[str] | tuple[str, ...]) -> dict:
    """['partition=gpu', 'nodes=2'] -> {'partition': 'gpu', 'nodes': 2}."""
    from nrl_autoresearch.recipes.params import parse_value  # the recipes' YAML reading: not needed to list names

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"bad --launcher-option {item!r}: write KEY=VALUE, for example partition=gpu")
        options[key.strip().replace("-", "_")] = parse_value(value)
    return options


def choose(gpus_needed: int, options: dict) -> tuple[str, str]:
    """`--launcher auto`, as the skill says: locally when this machine has the GPUs the recipe asks for and they
    are free; otherwise Slurm when sbatch is here, Kubernetes when nrl-k8s is, Ray when an address is given."""
    free = free_gpus()
    if gpus_needed == 0:
        return "local", "the runs need no GPU"
    if len(free) >= gpus_needed:
        return "local", f"this machine has {len(free)} free GPUs of the {gpus_needed} each run needs"
    lacking = f"this machine has {len(free)} free GPUs, each run needs {gpus_needed}"
    if shutil.which("sbatch"):
        if slurm_answers():
            return "slurm", f"{lacking}; sbatch is available and sinfo answers"
        lacking += "; sbatch is here but sinfo does not reach the Slurm controller"
    if shutil.which("nrl-k8s"):
        return "k8s", f"{lacking}; nrl-k8s is available"
    if options.get("address"):
        return "ray", f"{lacking}; a Ray address is configured"
    raise UsageError(
        f"no launcher can run this campaign: {lacking}, and there is no sbatch, no nrl-k8s and no Ray "
        "address (--launcher-option address=http://HEAD:8265); choose one with --launcher"
    )


def slurm_answers(timeout_s: float = 15.0) -> bool:
    """Whether `sinfo` reaches the controller: sbatch on PATH alone does not mean jobs can be submitted."""
    try:
        return (
            subprocess.run(["sinfo", "--noheader", "--summarize"], capture_output=True, timeout=timeout_s).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
