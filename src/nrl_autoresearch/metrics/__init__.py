"""Metric sources, by the kind named in `--metric-source KIND:ARG`. A new source is one file and one line here."""

from __future__ import annotations

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.metric import MetricSource
from nrl_autoresearch.metrics.jsonl import Jsonl
from nrl_autoresearch.metrics.mlflow_runs import Mlflow
from nrl_autoresearch.metrics.nemo_rl import NemoRL
from nrl_autoresearch.metrics.tensorboard import TensorBoard
from nrl_autoresearch.metrics.text import Line, Regex
from nrl_autoresearch.metrics.wandb_files import Wandb

SOURCES: dict[str, type[MetricSource]] = {
    "tensorboard": TensorBoard,
    "regex": Regex,
    "line": Line,
    "jsonl": Jsonl,
    "nemo-rl": NemoRL,
    "mlflow": Mlflow,
    "wandb": Wandb,
}


def parse_source(spec: str) -> MetricSource:
    """Build a source from 'kind:arg', with one clear message for anything unknown."""
    kind, sep, arg = spec.partition(":")
    if not sep or kind not in SOURCES:
        known = ", ".join(f"{k}:..." for k in SOURCES)
        raise UsageError(f"unknown --metric-source {spec!r}: use one of {known}")
    return SOURCES[kind](arg)
