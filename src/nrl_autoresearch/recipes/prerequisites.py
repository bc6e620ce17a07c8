"""What a NeMo-RL recipe needs before its first step: the uv environment the runs reuse, synced for the checkout;
the model weights (in the Hugging Face cache, or a token where the model is gated); the extra installs NeMo-RL's
test scripts run first."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nrl_autoresearch.core.recipe import Check, unknown
from nrl_autoresearch.recipes.nemo_config import get_dotted

MODEL_KEYS = ("policy.model_name", "teacher.model_name")
# Organisations whose models ask for an accepted licence and a token (meta-llama's Llama-3.2-1B in the base configs).
GATED_ORGS = ("meta-llama", "google", "mistralai")
# tests/test_suites/llm/common.env runs it for scripts whose name matches this
EXTRA_INSTALL_NAMES = re.compile(r"omni|audio|avqa|vlm")


UV_CHECK_TIMEOUT_S = 60.0
UV_SYNCED = "uv environment synced with this checkout"


def uv_synced(uv: str, root: Path, venv: Path, main: Path) -> Check:
    """Whether `venv` holds what root's uv.lock and pyproject.toml ask for, by uv's own `uv sync --check`
    (inexact, as `uv run` syncs: extra packages installed by hand are kept). It changes nothing."""
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)}
    argv = [uv, "sync", "--check", "--inexact", "--project", str(root)]
    try:
        proc = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=UV_CHECK_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as err:
        return unknown(UV_SYNCED, f"'uv sync --check' did not answer ({type(err).__name__})")
    said = proc.stderr.strip().splitlines()
    if proc.returncode == 0:
        return Check(True, UV_SYNCED, f"{venv} matches {root / 'uv.lock'}")
    if proc.returncode == 1 and any("outdated" in line for line in said):
        changes = [line.strip() for line in said if line.lstrip().startswith(("+ ", "- ", "~ "))]
        shown = f" ({', '.join(changes[:5])}{', ...' if len(changes) > 5 else ''})" if changes else ""
        prefix = "" if root == main else f"UV_PROJECT_ENVIRONMENT={shlex.quote(str(venv))} "
        return Check(False, UV_SYNCED, f"{venv} is not synced for {root}{shown}: run "
                     f"'{prefix}uv sync --project {shlex.quote(str(root))}' once before the campaign (otherwise the first run syncs it inside its time limit)")
    return unknown(UV_SYNCED, f"'uv sync --check' could not tell: {said[-1] if said else f'exit {proc.returncode}'}")


def hf_home() -> Path:
    return Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")


def hub_cache() -> Path:
    return Path(os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or hf_home() / "hub")


def has_token() -> bool:
    """HF_TOKEN, or the token file `huggingface-cli login` writes (its value is never read here)."""
    token_file = Path(os.environ.get("HF_TOKEN_PATH") or hf_home() / "token")
    return bool(os.environ.get("HF_TOKEN")) or token_file.is_file()


def model_checks(resolved: Mapping[str, Any]) -> list[Check]:
    names = dict.fromkeys(v for key in MODEL_KEYS if isinstance(v := get_dotted(resolved, key, None), str))
    return [_model_check(name) for name in names]


def _model_check(name: str) -> Check:
    item = f"model {name} reachable"
    if Path(name).is_absolute():
        found = Path(name).exists()
        return Check(found, item, "a local path" if found else f"{name} does not exist")
    cached = hub_cache() / f"models--{name.replace('/', '--')}"
    if cached.is_dir():
        return Check(True, item, f"in the Hugging Face cache ({cached})")
    gated = name.split("/", 1)[0] in GATED_ORGS
    if gated and not has_token():
        return Check(False, item, f"not in {hub_cache()} and gated, with no token: accept its licence on "
                     "huggingface.co, then export HF_TOKEN or run 'huggingface-cli login'")
    return Check(False, item, f"unknown: not in {hub_cache()}; it downloads at the first run"
                 + (" (a token is set)" if gated else " if the machine reaches huggingface.co"), blocking=False)


def extra_installs(recipe_path: str) -> list[Check]:
    if not EXTRA_INSTALL_NAMES.search(Path(recipe_path).name):
        return []
    return [unknown("extra installs", "whether done cannot be told: NeMo-RL's test scripts run "
                    "'bash tools/install_audio_deps.sh' first for VLM, omni and audio recipes")]
