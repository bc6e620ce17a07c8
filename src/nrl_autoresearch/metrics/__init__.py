"""Metric sources, by the kind named in `--metric-source KIND:ARG`. A new source is one file and one line here."""

from __future__ import annotations

from ..errors import UsageError
from .base import MetricSource
from .jsonl import Jsonl
from .mlflow_runs import Mlflow
from .nemo_rl import NemoRL
from .tensorboard import TensorBoard
from .text import Line, Regex

SOURCES: dict[str, type[MetricSource]] = {
    "tensorboard": TensorBoard,
    "regex": Regex,
    "line": Line,
    "jsonl": Jsonl,
    "nemo-rl": NemoRL,
    "mlflow": Mlflow,
}


def parse_source(spec: str) -> MetricSource:
    """Build a source from 'kind:arg', with one clear message for anything unknown."""
    kind, sep, arg = spec.partition(":")
    if not sep or kind not in SOURCES:
        known = ", ".join(f"{k}:..." for k in SOURCES)
        raise UsageError(f"unknown --metric-source {spec!r}: use one of {known}")
    return SOURCES[kind](arg)
