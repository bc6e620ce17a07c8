"""Real git repositories in temporary folders, and the real command line: in this process, or as a subprocess
where the process itself is what a test is about."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from nrl_autoresearch.core.metric import RunOutputs

PY = sys.executable


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def values_read(spec: str, run: RunOutputs) -> list[float]:
    """The values the metric source `spec` reads from a run that must hold the metric."""
    from nrl_autoresearch.metrics import parse_source

    reading = parse_source(spec).read(run)
    assert reading is not None, f"{spec} found no metric"
    return [p.value for p in reading.points]


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


def cli(
    repo: Path, *args: str, env: dict | None = None, timeout: float = 300, check: bool = False, process: bool = False
) -> subprocess.CompletedProcess:
    """`autoresearch ARGS` in `repo`, as a person would type it.

    By default the command line runs in this process (`python -m nrl_autoresearch` costs a second of imports per
    call) with what a fresh process would have: `repo` as working directory, the environment plus `env`, its own
    argv, stdin at end of file, and file descriptors 1 and 2 captured, so that the output of the commands it starts
    is captured too. `process=True` runs a real subprocess, with `timeout`, for tests about the process itself;
    in this process, hangs are ended by pytest's timeout."""
    if process:
        proc = subprocess.run(
            [PY, "-m", "nrl_autoresearch", *args],
            cwd=repo,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            timeout=timeout,
        )
    else:
        proc = _in_process(repo, list(args), env or {})
    if check and proc.returncode != 0:
        raise AssertionError(f"autoresearch {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def _in_process(repo: Path, args: list[str], env: dict) -> subprocess.CompletedProcess:
    """The command line's `main` called here, its exit status and output as the subprocess would report them."""
    from nrl_autoresearch.interface.cli import main

    with _process_state(repo, args, env), _captured_output() as output:
        try:
            main.main(args=args, prog_name="python -m nrl_autoresearch")  # as click names `python -m`
            code = 0
        except SystemExit as exc:
            code = _exit_status(exc.code)
        except BaseException:  # noqa: BLE001 - as the interpreter would: the traceback on stderr, status 1
            traceback.print_exc()
            code = 1
    return subprocess.CompletedProcess(["autoresearch", *args], code, output["stdout"], output["stderr"])


def _exit_status(code: object) -> int:
    """What `sys.exit(code)` makes the exit status of a process."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


@contextmanager
def _process_state(repo: Path, args: list[str], env: dict) -> Iterator[None]:
    """Working directory, environment, argv and stdin of a fresh process, all restored afterwards."""
    cwd, environ, argv, stdin = os.getcwd(), dict(os.environ), sys.argv, sys.stdin
    os.chdir(repo)
    os.environ.update({name: str(value) for name, value in env.items()})
    sys.argv = [str(Path(__file__).resolve().parents[1] / "src/nrl_autoresearch/__main__.py"), *args]
    sys.stdin = open(os.devnull)  # noqa: SIM115  # closed when the block ends, as a process's stdin is
    try:
        yield
    finally:
        sys.stdin.close()
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environ)
        sys.argv, sys.stdin = argv, stdin


@contextmanager
def _captured_output() -> Iterator[dict[str, str]]:
    """Descriptors 1 and 2 (and sys.stdout, sys.stderr on them) into files; their text once the block ends,
    with newlines translated as `subprocess.run(text=True)` does."""
    output: dict[str, str] = {}
    streams = sys.stdout, sys.stderr
    for stream in streams:
        stream.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", write_through=True)
        sys.stderr = io.TextIOWrapper(
            io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", write_through=True
        )
        try:
            yield output
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.stdout, sys.stderr = streams
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            for name, file in ("stdout", out), ("stderr", err):
                file.seek(0)
                output[name] = file.read().decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")


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


TRAIN = """\
import json, sys, time
cfg = json.load(open("params.json"))
time.sleep(cfg.get("sleep", 0))
score = 1.0 - abs(cfg["lr"] - 0.1)
print("epoch 1 done")
print(f"val_score: {score:.4f}")
"""


def score_repo(path: Path, **params) -> Path:
    """A tiny training project: params.json -> `val_score: x` on stdout."""
    return make_repo(path, {"train.py": TRAIN, "params.json": json.dumps({"lr": 0.01, "sleep": 0, **params}) + "\n"})


@contextmanager
def small_disk(path: Path, size: str = "4m") -> Iterator[Path]:
    """A real tmpfs of `size` mounted at `path`, that a test can fill (mounting needs root: skipped otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("a full disk is a tmpfs mounted by the test, which needs root")
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
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
