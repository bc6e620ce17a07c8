"""Metrics printed in the run log: `regex:PATTERN` (one group) and `line:KEY` (`KEY: value` summary lines)."""

from __future__ import annotations

import re

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.metric import MetricSource, Point, Reading, RunOutputs

NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?nan|[-+]?inf)"


def points_from(pattern: re.Pattern[str], text: str) -> list[Point]:
    """One point per match, numbered in order of appearance."""
    return [Point(i, float(m.group(1))) for i, m in enumerate(pattern.finditer(text), start=1)]


class Regex(MetricSource):
    kind = "regex"

    def __init__(self, arg: str):
        super().__init__(arg)
        try:
            self.pattern = re.compile(arg, re.MULTILINE)
        except re.error as err:
            raise UsageError(f"bad --metric-source regex {arg!r}: {err}") from None
        if self.pattern.groups != 1:
            raise UsageError(f"bad --metric-source regex {arg!r}: it needs exactly one capture group around the number")

    def read(self, run: RunOutputs) -> Reading | None:
        try:
            points = points_from(self.pattern, run.log_text())
        except ValueError:
            return None
        return Reading(points, f"regex {self.arg!r} in {run.log_path}") if points else None


class Line(MetricSource):
    """`KEY: value` or `KEY = value` at the start of a line, as karpathy-style training scripts print summaries."""

    kind = "line"

    def __init__(self, arg: str):
        super().__init__(arg)
        if not arg.strip():
            raise UsageError("bad --metric-source 'line:': give the key printed before the value, as in line:val_bpb")
        self.pattern = re.compile(rf"^\s*{re.escape(arg)}\s*[:=]\s*{NUMBER}\s*$", re.MULTILINE | re.IGNORECASE)

    def read(self, run: RunOutputs) -> Reading | None:
        points = points_from(self.pattern, run.log_text())
        return Reading(points, f"'{self.arg}: value' lines in {run.log_path}") if points else None
