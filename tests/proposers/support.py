"""A small training project with three settings, and the real command line that must succeed on it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests import helpers
from tests.helpers import PY, make_repo

TRAIN = """\
import json
cfg = json.load(open("params.json"))
score = 1.0 - abs(cfg["lr"] - 0.1) - 0.02 * abs(cfg["layers"] - 6) + (0.05 if cfg["bias"] else 0.0)
print(f"val_score: {score:.4f}")
"""


def cli(repo: Path, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`autoresearch ARGS` in `repo`; fails the test with the output when it does not succeed."""
    return helpers.cli(repo, *args, env=env, timeout=timeout, check=True)


def project(path: Path) -> Path:
    """A training project with three settings: lr (best 0.1), layers (best 6) and bias (better on)."""
    return make_repo(
        path, {"train.py": TRAIN, "params.json": json.dumps({"lr": 0.01, "layers": 2, "bias": False}) + "\n"}
    )


def init(repo: Path, experiments: int, *extra: str) -> None:
    cli(
        repo,
        "init",
        "--command",
        f"{PY} train.py",
        "--metric",
        "val_score",
        "--maximize",
        "--params-file",
        "params.json",
        "--campaign",
        "p",
        "--max-experiments",
        str(experiments),
        *extra,
    )
