"""Brev instances, following the brev-etiquette skill: the checkout in /home/ubuntu/RL stays small, everything a
run generates (logs, checkpoints, Ray and temporary folders, W&B files) goes to /ephemeral, caches are shared
per user, the repository's `.env` is loaded without ever printing a value, and free space is watched.

    /ephemeral/nemo-rl/<user>/cache/{huggingface,torch,triton,uv,pip,xdg,wandb}
    /ephemeral/nemo-rl/<user>/nemo-rl-auto-research/<campaign>/<experiment>/{logs,checkpoints,artifacts,ray,tmp,wandb}
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

CHECKOUT = Path("/home/ubuntu/RL")
EPHEMERAL = Path("/ephemeral")
STOP_BELOW_GB = 5.0  # no new run starts below this much free space on the volume
CACHES = ("huggingface", "torch", "triton", "uv", "pip", "xdg", "wandb")
EXPERIMENT_DIRS = ("logs", "checkpoints", "artifacts", "ray", "tmp", "wandb")
_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def detected() -> bool:
    """A Brev instance: the source checkout at /home/ubuntu/RL and /ephemeral mounted as a volume."""
    return CHECKOUT.is_dir() and os.path.ismount(EPHEMERAL)


def layout(volume: Path, campaign: str) -> dict:
    """The campaign's paths on the volume (absolute, as the ledger records them)."""
    root = Path(volume).resolve() / "nemo-rl" / os.environ.get("USER", "ubuntu")
    return {
        "volume": str(Path(volume).resolve()),
        "cache": str(root / "cache"),
        "campaign_root": str(root / "nemo-rl-auto-research" / campaign),
    }


def prepare(options: dict, run_dir: Path) -> dict[str, str]:
    """Create an experiment's folders and the shared caches; return the environment a run gets."""
    cache = Path(options["cache"])
    for name in CACHES:
        (cache / name).mkdir(parents=True, exist_ok=True)
    for name in EXPERIMENT_DIRS:
        (run_dir / name).mkdir(parents=True, exist_ok=True)
    hf = cache / "huggingface"
    return {
        "HF_HOME": str(hf),
        "HF_HUB_CACHE": str(hf / "hub"),
        "HF_DATASETS_CACHE": str(hf / "datasets"),
        "TRANSFORMERS_CACHE": str(hf / "transformers"),
        "TORCH_HOME": str(cache / "torch"),
        "TRITON_CACHE_DIR": str(cache / "triton"),
        "UV_CACHE_DIR": str(cache / "uv"),
        "PIP_CACHE_DIR": str(cache / "pip"),
        "XDG_CACHE_HOME": str(cache / "xdg"),
        "WANDB_CACHE_DIR": str(cache / "wandb"),
        "RAY_TMPDIR": str(run_dir / "ray"),
        "TMPDIR": str(run_dir / "tmp"),
        "WANDB_DIR": str(run_dir / "wandb"),
    }


def load_env_file(repo: Path) -> list[str] | None:
    """Load the repository's `.env` (as `set -a; . .env` would) into this process, without overriding what is
    already set; return the names loaded (never the values), or None when there is no `.env`."""
    path = Path(repo) / ".env"
    if not path.is_file():
        return None
    names = []
    for line in path.read_text().splitlines():
        match = _LINE.match(line)
        if match and not line.lstrip().startswith("#"):
            name, value = match.group(1), match.group(2).strip().strip("'\"")
            os.environ.setdefault(name, value)
            names.append(name)
    return names


def free_gb(options: dict) -> float:
    return shutil.disk_usage(options["volume"]).free / 2**30
