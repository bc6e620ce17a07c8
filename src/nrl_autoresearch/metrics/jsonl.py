"""`jsonl:FIELD`: a field (dotted for nesting) of JSON objects, one a line, in the run log or .jsonl files the run wrote."""

from __future__ import annotations

import json
import re
from pathlib import Path

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.metric import MetricSource, NotANumber, Point, Reading, RunOutputs

_JSONL = re.compile(r"\.jsonl$")


class Jsonl(MetricSource):
    kind = "jsonl"

    def __init__(self, arg: str):
        super().__init__(arg)
        if not arg or arg.startswith(".") or arg.endswith(".") or ".." in arg:
            raise UsageError(
                f"bad --metric-source 'jsonl:{arg}': give a field name, dotted for nested fields (jsonl:val.acc)"
            )
        self.path = arg.split(".")

    def read(self, run: RunOutputs) -> Reading | None:
        sources: list[tuple[str, str]] = [(str(run.log_path), run.log_text())]
        sources += [(str(p), run.new_text(p)) for p in run.files(_JSONL)]
        points: list[float] = []
        used: list[str] = []
        for name, text in sources:
            found: list[float] = []
            for number, line in enumerate(text.splitlines(), 1):
                try:
                    value = self._value(line)
                except NotANumber as err:
                    problem = f"jsonl field {self.arg} is {err} at line {number} of {Path(name).name}, not a number"
                    return Reading([Point(i, v) for i, v in enumerate(points + found, 1)], name, problem)
                if value is not None:
                    found.append(value)
            if found:
                used.append(name)
                points += found
        if not points:
            return None
        return Reading([Point(i, v) for i, v in enumerate(points, 1)], f"jsonl field {self.arg} in {', '.join(used)}")

    def _value(self, line: str) -> float | None:
        """The field's number, or None where the line has no such field; NotANumber for a value that is none."""
        line = line.strip()
        if not line.startswith("{"):
            return None
        try:
            obj = json.loads(line)
            for key in self.path:
                obj = obj[key]
        except (ValueError, KeyError, TypeError, IndexError):
            return None
        if obj is None:
            return None  # loggers write null where a step has no value
        if isinstance(obj, bool) or not isinstance(obj, (int, float)):
            raise NotANumber(json.dumps(obj)[:40])
        try:
            return float(obj)
        except OverflowError:
            raise NotANumber(f"{str(obj)[:20]}... (too large for a float)") from None
