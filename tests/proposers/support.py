"""The real command line with the search, agent and llm proposers registered (as `proposers/__init__.py` lists
them once they are in its registry: `setdefault` leaves the registry's own entries alone)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.helpers import PY, make_repo

BOOT = """
import sys
from nrl_autoresearch.proposers import PROPOSERS

def _search(arg, engine):
    from nrl_autoresearch.proposers.search import SearchProposer
    return SearchProposer(arg, engine)

def _agent(arg, engine):
    from nrl_autoresearch.proposers.agent import AgentProposer
    return AgentProposer(arg, engine)

def _llm(arg, engine):
    from nrl_autoresearch.proposers.llm import LLMProposer
    return LLMProposer(engine, model=arg or None)

for name, factory in {"search": _search, "agent": _agent, "llm": _llm}.items():
    PROPOSERS.setdefault(name, factory)
sys.argv[0] = "autoresearch"
from nrl_autoresearch.cli import main
main()
"""

TRAIN = '''\
import json
cfg = json.load(open("params.json"))
score = 1.0 - abs(cfg["lr"] - 0.1) - 0.02 * abs(cfg["layers"] - 6) + (0.05 if cfg["bias"] else 0.0)
print(f"val_score: {score:.4f}")
'''


def cli(repo: Path, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`autoresearch ARGS` in `repo`; fails the test with the output when it does not succeed."""
    proc = subprocess.run([PY, "-c", BOOT, *args], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    assert proc.returncode == 0, f"autoresearch {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def project(path: Path) -> Path:
    """A training project with three settings: lr (best 0.1), layers (best 6) and bias (better on)."""
    return make_repo(path, {"train.py": TRAIN, "params.json": json.dumps({"lr": 0.01, "layers": 2, "bias": False}) + "\n"})


def init(repo: Path, experiments: int, *extra: str) -> None:
    cli(repo, "init", "--command", f"{PY} train.py", "--metric", "val_score", "--maximize", "--params-file",
        "params.json", "--campaign", "p", "--max-experiments", str(experiments), *extra)
