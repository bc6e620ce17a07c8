"""`tensorboard:TAG`: every point of one scalar tag from the event files the run wrote."""

from __future__ import annotations

import re

from ..errors import UsageError
from .base import MetricSource, Point, Reading, RunOutputs
from .tfevents import read_scalars

EVENT_FILE = re.compile(r"^events\.out\.tfevents\.")


def tag_points(run: RunOutputs, tag: str) -> tuple[list[Point], list[str]]:
    """Points of `tag` across the run's event files (later files win on a repeated step), and the files used."""
    by_step: dict[float, float] = {}
    used = []
    for path in run.files(EVENT_FILE):
        points = read_scalars(path).get(tag)
        if points:
            used.append(str(path))
            for point in points:
                by_step.pop(point.step, None)
                by_step[point.step] = point.value
    return [Point(step, value) for step, value in sorted(by_step.items())], used


def max_over_tags(run: RunOutputs, pattern: re.Pattern[str]) -> float | None:
    """The largest value of any tag matching `pattern` (for memory peaks across GPUs and samples)."""
    peak = None
    for path in run.files(EVENT_FILE):
        for tag, points in read_scalars(path).items():
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
