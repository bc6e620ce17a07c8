"""`jsonl:FIELD`: a field (dotted for nesting) of JSON objects, one a line, in the run log or .jsonl files the run wrote."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import UsageError
from .base import MetricSource, Point, Reading, RunOutputs

_JSONL = re.compile(r"\.jsonl$")


class Jsonl(MetricSource):
    kind = "jsonl"

    def __init__(self, arg: str):
        super().__init__(arg)
        if not arg or arg.startswith(".") or arg.endswith(".") or ".." in arg:
            raise UsageError(f"bad --metric-source 'jsonl:{arg}': give a field name, dotted for nested fields (jsonl:val.acc)")
        self.path = arg.split(".")

    def read(self, run: RunOutputs) -> Reading | None:
        sources: list[tuple[str, str]] = [(str(run.log_path), run.log_text())]
        sources += [(str(p), Path(p).read_text(errors="replace")) for p in run.files(_JSONL)]
        points, used = [], []
        for name, text in sources:
            found = [v for v in map(self._value, text.splitlines()) if v is not None]
            if found:
                used.append(name)
                points += found
        if not points:
            return None
        return Reading([Point(i, v) for i, v in enumerate(points, 1)], f"jsonl field {self.arg} in {', '.join(used)}")

    def _value(self, line: str) -> float | None:
        line = line.strip()
        if not line.startswith("{"):
            return None
        try:
            obj = json.loads(line)
            for key in self.path:
                obj = obj[key]
            return float(obj)
        except (ValueError, KeyError, TypeError):
            return None
