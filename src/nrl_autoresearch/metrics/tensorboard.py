"""`tensorboard:TAG`: every point of one scalar tag from the event files the run wrote."""

from __future__ import annotations

import heapq
import re
from pathlib import Path

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.metric import MetricSource, Point, Reading, RunOutputs
from nrl_autoresearch.metrics.tfevents import read_scalars

EVENT_FILE = re.compile(r"^events\.out\.tfevents\.")


def run_scalars(run: RunOutputs) -> list[tuple[Path, dict[str, list[Point]]]]:
    """Each event file this run wrote, with what this run wrote into it, oldest file first."""
    return [(path, read_scalars(run.new_bytes(path))) for path in run.files(EVENT_FILE)]


def tag_points(run: RunOutputs, tag: str) -> tuple[list[Point], list[str]]:
    """Every point of `tag` in the order it was logged, and the files used.

    Writers log several points at one step (one per finished episode, say): all are kept. Within a file the
    order is the file's; across files (a restarted writer, several writers) points interleave by wall time.
    """
    per_file = [(str(path), scalars[tag]) for path, scalars in run_scalars(run) if scalars.get(tag)]
    merged = heapq.merge(*(points for _, points in per_file), key=lambda p: p.wall_time or 0.0)
    return list(merged), [name for name, _ in per_file]


def max_over_tags(run: RunOutputs, pattern: re.Pattern[str]) -> float | None:
    """The largest value of any tag matching `pattern` (for memory peaks across GPUs and samples)."""
    peak = None
    for _, scalars in run_scalars(run):
        for tag, points in scalars.items():
            if pattern.fullmatch(tag):
                top = max(p.value for p in points)
                peak = top if peak is None else max(peak, top)
    return peak


class TensorBoard(MetricSource):
    kind = "tensorboard"

    def __init__(self, arg: str):
        super().__init__(arg)
        if not arg.strip():
            raise UsageError("bad --metric-source 'tensorboard:': give the scalar tag, as in tensorboard:val/accuracy")

    def read(self, run: RunOutputs) -> Reading | None:
        points, used = tag_points(run, self.arg)
        if not points:
            return None
        return Reading(points, f"tensorboard tag {self.arg} in {', '.join(used)}")
