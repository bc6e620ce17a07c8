"""The embedded demo: a tiny NeMo-RL-shaped GRPO project, written into a scratch git repository."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime
from pathlib import Path

from nrl_autoresearch.core.errors import UsageError

TEMPLATE = Path(__file__).parent / "template"
RECIPE = "examples/configs/recipes/llm/grpo-toy-digitsum-1n0g.yaml"


def default_dir(cwd: Path) -> Path:
    return cwd / f"autoresearch-demo-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def create_repo(dest: Path) -> Path:
    """Copy the template and commit it as the starting point of a campaign."""
    if dest.exists() and any(dest.iterdir()):
        raise UsageError(f"{dest} exists and is not empty: choose a new --dir")
    # the template's own files only: never a cache a tool left beside them
    caches = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache", ".pytest_cache")
    shutil.copytree(TEMPLATE, dest, dirs_exist_ok=True, ignore=caches)
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    for args in (["init", "-q", "-b", "main"], ["add", "--", *files]):
        subprocess.run(["git", "-C", str(dest), *args], check=True, capture_output=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(dest),
            "-c",
            "user.name=autoresearch",
            "-c",
            "user.email=autoresearch@localhost",
            "commit",
            "-q",
            "-m",
            "toy GRPO project (NeMo-RL layout)",
        ],
        check=True,
        capture_output=True,
    )
    return dest
