"""Metric sources, by the kind named in `--metric-source KIND:ARG`. A new source is one file and one line here.

The registry names each source's module and class; a source is imported when a campaign reads it (MLflow's
store and TensorBoard's event files are not needed by a campaign that reads its log)."""

from __future__ import annotations

from importlib import import_module

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.metric import MetricSource

SOURCES: dict[str, str] = {
    "tensorboard": "nrl_autoresearch.metrics.tensorboard:TensorBoard",
    "regex": "nrl_autoresearch.metrics.text:Regex",
    "line": "nrl_autoresearch.metrics.text:Line",
    "jsonl": "nrl_autoresearch.metrics.jsonl:Jsonl",
    "nemo-rl": "nrl_autoresearch.metrics.nemo_rl:NemoRL",
    "mlflow": "nrl_autoresearch.metrics.mlflow_runs:Mlflow",
    "wandb": "nrl_autoresearch.metrics.wandb_files:Wandb",
}


def parse_source(spec: str) -> MetricSource:
    """Build a source from 'kind:arg', with one clear message for anything unknown."""
    kind, sep, arg = spec.partition(":")
    if not sep or kind not in SOURCES:
        known = ", ".join(f"{k}:..." for k in SOURCES)
        raise UsageError(f"unknown --metric-source {spec!r}: use one of {known}")
    module, _, name = SOURCES[kind].partition(":")
    source: type[MetricSource] = getattr(import_module(module), name)
    return source(arg)
