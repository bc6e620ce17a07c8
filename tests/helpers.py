"""Real git repositories in temporary folders, and the real command line run as a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PY = sys.executable


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def make_repo(path: Path, files: dict[str, str]) -> Path:
    """A git repository with one commit holding `files`."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "researcher@example.org")
    git(path, "config", "user.name", "Researcher")
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", "--", *files)
    git(path, "commit", "-qm", "initial")
    return path


def cli(repo: Path, *args: str, env: dict | None = None, timeout: float = 300, check: bool = False) -> subprocess.CompletedProcess:
    """`autoresearch ARGS` in `repo`, as a person would type it."""
    proc = subprocess.run([PY, "-m", "nrl_autoresearch", *args], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"autoresearch {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def tree_digest(repo: Path) -> dict[str, str]:
    """Every file of the working tree (outside .git and our untracked reports) with its hash, plus index and HEAD."""
    found = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo).as_posix()
        if path.is_file() and not rel.startswith((".git/", "reports/", "session/")):
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    found[".git/index"] = hashlib.sha256((repo / ".git" / "index").read_bytes()).hexdigest()
    found["HEAD"] = git(repo, "rev-parse", "HEAD").strip() + " " + git(repo, "branch", "--show-current").strip()
    found["status"] = git(repo, "status", "--porcelain=v1", "--untracked-files=all")
    return found


def ledger_rows(repo: Path) -> list[dict]:
    proc = cli(repo, "ledger", "--json", check=True)
    return json.loads(proc.stdout)["rows"]


TRAIN = '''\
import json, sys, time
cfg = json.load(open("params.json"))
time.sleep(cfg.get("sleep", 0))
score = 1.0 - abs(cfg["lr"] - 0.1)
print("epoch 1 done")
print(f"val_score: {score:.4f}")
'''


def score_repo(path: Path, **params) -> Path:
    """A tiny training project: params.json -> `val_score: x` on stdout."""
    return make_repo(path, {"train.py": TRAIN, "params.json": json.dumps({"lr": 0.01, "sleep": 0, **params}) + "\n"})


@contextmanager
def small_disk(path: Path, size: str = "4m") -> Iterator[Path]:
    """A real tmpfs of `size` mounted at `path`, that a test can fill (mounting needs root: skipped otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("a full disk is a tmpfs mounted by the test, which needs root")
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs at {path}: {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> Path:
    """Write a filler file in `folder` until its disk is full; delete it to free the space."""
    filler = folder / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler
