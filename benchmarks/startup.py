"""How long does the command line take to start, against a bare interpreter started in the same run?

`--version`, `status` (of a small command campaign created in a temporary repository) and `--help` are each run
ROUNDS times, interleaved with `python -c pass`; the medians of wall-clock and CPU time (user + system) are
compared. Bytecode is cached in a temporary folder first, as an installed package has it. Each command's
imports are listed too: the heavy modules it loads (of `cli.STARTUP_FREE`, which it should not) and how many
modules it imports in all.

    python benchmarks/startup.py [ROUNDS]
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nrl_autoresearch.interface.cli import STARTUP_FREE

CLI = [sys.executable, "-m", "nrl_autoresearch"]
CASES = {
    "bare": [sys.executable, "-c", "pass"],
    "--version": [*CLI, "--version"],
    "status": [*CLI, "status"],
    "--help": [*CLI, "--help"],
}


def campaign_repo(root: Path, env: dict[str, str]) -> Path:
    """A one-commit repository with a command campaign recorded in it."""
    repo = root / "project"
    repo.mkdir()
    (repo / "train.py").write_text("print('val_score 0.5')\n")
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "train.py"],
        ["-c", "user.name=B", "-c", "user.email=b@example.org", "commit", "-qm", "start"],
    ):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    subprocess.run(
        [*CLI, "init", "--command", f"{sys.executable} train.py", "--metric", "val_score", "--maximize"],
        cwd=repo,
        env=env,
        check=True,
        capture_output=True,
    )
    return repo


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def imported(argv: list[str], cwd: Path, env: dict[str, str]) -> list[str]:
    """Every module the command imports, from `python -X importtime`."""
    proc = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return [
        line.split("|")[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "[us]" not in line
    ]


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        repo = campaign_repo(Path(tmp), env)
        modules = {name: imported(argv, repo, env) for name, argv in CASES.items()}  # also warms the cache
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in CASES}
        for _ in range(rounds):
            for name, argv in CASES.items():
                runs[name].append(timed(argv, repo, env))
    wall = {name: statistics.median(w for w, _ in found) for name, found in runs.items()}
    cpu = {name: statistics.median(c for _, c in found) for name, found in runs.items()}
    print(
        f"median of {rounds} runs each; bare interpreter: {wall['bare'] * 1000:.0f} ms wall, "
        f"{cpu['bare'] * 1000:.0f} ms CPU"
    )
    for name in CASES:
        if name == "bare":
            continue
        heavy = sorted({m.split(".")[0] for m in modules[name]} & set(STARTUP_FREE))
        print(
            f"{name:10s} {wall[name] * 1000:5.0f} ms  ratio {name}/bare {wall[name] / wall['bare']:.2f}x wall, "
            f"{cpu[name] / cpu['bare']:.2f}x CPU; {len(modules[name])} modules, heavy: {', '.join(heavy) or 'none'}"
        )


if __name__ == "__main__":
    main()
