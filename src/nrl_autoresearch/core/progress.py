"""Live progress while runs are in flight: the run (step i/N, elapsed, time left, latest metric) and the campaign
(attempted of target, time left, best so far, the stop sentence). On a terminal one line is rewritten in place;
elsewhere (CI, agents, log files) a plain line is printed at a sensible rate."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from nrl_autoresearch.core.stoprules import exact_duration, format_duration

TTY_EVERY_S = 1.0
PLAIN_EVERY_S = 30.0


class Progress:
    def __init__(
        self, write: Callable[[str], None] | None = None, *, tty: bool | None = None, every_s: float | None = None
    ):
        self.tty = sys.stdout.isatty() if tty is None else tty
        self.write = write or (lambda text: print(text, flush=True))
        default = TTY_EVERY_S if self.tty else float(os.environ.get("AUTORESEARCH_PROGRESS_EVERY_S", PLAIN_EVERY_S))
        self.every_s = every_s if every_s is not None else default
        self._last: dict[str, float] = {}
        self._shown: dict[str, str] = {}

    def due(self, key: str) -> bool:
        return time.time() - self._last.get(key, 0.0) >= self.every_s

    def show(self, key: str, text: str) -> None:
        self._last[key] = time.time()
        if self.tty:
            sys.stdout.write("\r\x1b[2K" + text[:200])
            sys.stdout.flush()
        elif self._shown.get(key) != text:  # a plain line that says nothing new is not printed again
            self.write(text)
        self._shown[key] = text

    def done(self, key: str) -> None:
        """End a run's line on a terminal, so the next output starts clean."""
        if self.tty and self._last.pop(key, None) is not None:
            sys.stdout.write("\r\x1b[2K")
            sys.stdout.flush()


def run_line(
    name: str, elapsed_s: float, step: tuple[int, int] | None, metric: str | None, limit_s: float | None
) -> str:
    """`lr-up: step 12/40, 1m05s elapsed, ~2m10s left, val:accuracy 0.612`"""
    parts = [f"{name}:"]
    if step:
        parts.append(f"step {step[0]}/{step[1]},")
    parts.append(f"{exact_duration(elapsed_s)} elapsed")
    if step and step[0] > 0:
        parts[-1] += ","
        parts.append(f"~{format_duration(elapsed_s / step[0] * (step[1] - step[0]))} left")
    elif limit_s:
        parts[-1] += ","
        parts.append(f"limit {exact_duration(limit_s)}")
    if metric:
        parts[-1] += ","
        parts.append(metric)
    return " ".join(parts)
