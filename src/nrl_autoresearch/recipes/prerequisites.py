"""What a NeMo-RL recipe needs before its first step, besides the Hub's models and datasets (`hub`): the uv
environment the runs reuse, synced for the checkout, and the extra installs NeMo-RL's test scripts run first."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

from nrl_autoresearch.core.recipe import Check, unknown

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
        proc = subprocess.run(
            argv, cwd=root, env=env, capture_output=True, text=True, timeout=UV_CHECK_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return unknown(UV_SYNCED, f"'uv sync --check' did not answer ({type(err).__name__})")
    said = proc.stderr.strip().splitlines()
    if proc.returncode == 0:
        return Check(True, UV_SYNCED, f"{venv} matches {root / 'uv.lock'}")
    if proc.returncode == 1 and any("outdated" in line for line in said):
        changes = [line.strip() for line in said if line.lstrip().startswith(("+ ", "- ", "~ "))]
        shown = f" ({', '.join(changes[:5])}{', ...' if len(changes) > 5 else ''})" if changes else ""
        prefix = "" if root == main else f"UV_PROJECT_ENVIRONMENT={shlex.quote(str(venv))} "
        return Check(
            False,
            UV_SYNCED,
            f"{venv} is not synced for {root}{shown}: run "
            f"'{prefix}uv sync --project {shlex.quote(str(root))}' once before the campaign "
            "(otherwise the first run syncs it inside its time limit)",
        )
    return unknown(UV_SYNCED, f"'uv sync --check' could not tell: {said[-1] if said else f'exit {proc.returncode}'}")


def extra_installs(recipe_path: str) -> list[Check]:
    if not EXTRA_INSTALL_NAMES.search(Path(recipe_path).name):
        return []
    return [
        unknown(
            "extra installs",
            "whether done cannot be told: NeMo-RL's test scripts run "
            "'bash tools/install_audio_deps.sh' first for VLM, omni and audio recipes",
        )
    ]
