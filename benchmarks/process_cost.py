"""What one command costs, measured from outside as a person runs it: wall-clock and CPU seconds.

CPU seconds count the command and every process it waited for (git, the training command), so they are the
steadier figure on a machine shared with others. Commands run with a bytecode cache in a folder of the caller's
choosing, as an installed package has one, even where the environment turns bytecode writing off.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Cost:
    wall: float
    cpu: float

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.wall + other.wall, self.cpu + other.cpu)


def installed_env(bytecode: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(bytecode)}


def cost(argv: list[str], cwd: Path, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> Cost:
    """The cost of running `argv` once; a run that fails (exit status outside `ok`, or a traceback) stops the
    benchmark with its output."""
    started, before = time.perf_counter(), _children_cpu()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode not in ok or "Traceback" in proc.stderr:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return Cost(time.perf_counter() - started, _children_cpu() - before)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
