"""MLflow (`init --mlflow URI`): every ledger row becomes an MLflow run in an experiment named after the campaign.

Logged after each row, and every row not logged yet is logged then too, so a tracker that was down is caught up
with. A run's id is kept in the journal with its row index, and a run is also found by its `autoresearch.index`
tag before one is created: a resume never duplicates a run. A tracker that cannot be reached never stops the
campaign: the engine says so once per row and carries on.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import re
import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.redact import redact
from nrl_autoresearch.runner.curves import curve_of

if TYPE_CHECKING:
    from nrl_autoresearch.core.ledger import Row
    from nrl_autoresearch.runner.planner import Planner

EVENT = "mlflow"  # journal event: {"row": index, "run_id": id}
INDEX_TAG = "autoresearch.index"
_BATCH = 1000  # MLflow's limit of metrics per log_batch call
_SYNCING = threading.Lock()  # workers recording rows at once must not log the same pending row twice


def validate(uri: str | None) -> str | None:
    """A tracking URI without credentials in it (MLflow reads those from its own environment variables)."""
    if uri is None:
        return None
    parts = urlsplit(uri)
    if not parts.scheme:
        raise UsageError(
            f"bad --mlflow {uri!r}: give a tracking URI such as http://127.0.0.1:5000 or file:///path/mlruns"
        )
    if parts.username or parts.password or parts.query:
        raise UsageError(
            "--mlflow must not carry credentials (they would be stored): export MLFLOW_TRACKING_USERNAME "
            "and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN, and give the bare URI"
        )
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise UsageError("--mlflow needs MLflow installed: pip install 'nrl-autoresearch[mlflow]'") from None
    return uri


def logged(planner: Planner) -> dict[int, str]:
    """Row index -> MLflow run id, from the journal."""
    return {e["row"]: e["run_id"] for e in planner.context.journal.events(EVENT)}


def sync(planner: Planner) -> None:
    """Log every row that has no MLflow run yet; on failure say so and leave them for the next call."""
    uri = planner.context.campaign.options.get("mlflow")
    if uri:
        with _SYNCING:
            _sync(planner, uri)


def _sync(planner: Planner, uri: str) -> None:
    done = logged(planner)
    pending = [r for r in planner.context.rows() if r.index not in done]
    if not pending:
        return
    problem = _unreachable(uri) or _logged_or_why(planner, uri, pending)
    if problem:
        planner.context.say(
            f"MLflow at {uri} not reached ({problem}): {len(pending)} row(s) will be logged when it answers; "
            "the campaign goes on"
        )


def _logged_or_why(planner: Planner, uri: str, pending: list[Row]) -> str | None:
    try:
        _log_rows(planner, uri, pending)
    except Exception as err:  # noqa: BLE001 -- whatever the tracker or its client raises, the campaign goes on
        said = redact(str(err)).splitlines()
        return f"{type(err).__name__}: {said[0][:200]}" if said else type(err).__name__
    return None


def _unreachable(uri: str) -> str | None:
    """For a tracking server, why its /health does not answer within a few seconds (None when it does)."""
    if urlsplit(uri).scheme not in ("http", "https"):
        return None
    import urllib.error  # with the HTTP and TLS modules behind it, only for a campaign that logs to a server
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=3) as response:
            response.read()
        return None
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code}"
    except (urllib.error.URLError, OSError) as err:
        return type(getattr(err, "reason", err)).__name__


def _log_rows(planner: Planner, uri: str, rows: list[Row]) -> None:
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    with contextlib.redirect_stdout(io.StringIO()):  # the client prints a link per finished run
        client = MlflowClient(uri)
        found = client.get_experiment_by_name(planner.context.campaign.name)
        experiment = found.experiment_id if found else client.create_experiment(planner.context.campaign.name)
        for row in rows:
            planner.context.journal.record(EVENT, row=row.index, run_id=_log_row(planner, client, experiment, row))


def _log_row(planner: Planner, client, experiment: str, row: Row) -> str:
    from mlflow.entities import Metric, Param

    existing = client.search_runs([experiment], filter_string=f"tags.`{INDEX_TAG}` = '{row.index}'", max_results=1)
    if existing:
        return existing[0].info.run_id
    attempt = planner.context.journal.attempts().get(row.index)
    data = attempt.data if attempt else {}
    run = client.create_run(
        experiment, tags=_tags(planner, row), run_name=f"{row.index} {row.branch.rsplit('/', 1)[1]}"
    )
    now = int(time.time() * 1000)
    key = metric_key(row.metric_name)
    metrics = [Metric(key, v, now, int(s)) for s, v in curve_of(planner.context, data) if math.isfinite(v)]
    finals = {
        f"final/{key}": row.metric_value,
        "memory_gb": row.memory_gb,
        "elapsed_min": row.elapsed_min,
        "gpu_hours": data.get("gpu_hours"),
    }  # elapsed time on the GPUs the run held, as the budget counts it
    metrics += [Metric(k, float(v), now, 0) for k, v in finals.items() if v is not None and math.isfinite(v)]
    params = [Param(k, redact(str(v))[:6000]) for k, v in sorted((data.get("effective") or {}).items())]
    for start in range(0, max(len(metrics), 1), _BATCH):
        client.log_batch(run.info.run_id, metrics=metrics[start : start + _BATCH], params=params if not start else [])
    client.set_terminated(run.info.run_id, "FAILED" if row.status == "crash" else "FINISHED")
    return run.info.run_id


def _tags(planner: Planner, row: Row) -> dict[str, str]:
    return {
        INDEX_TAG: str(row.index),
        "autoresearch.campaign": planner.context.campaign.name,
        "branch": row.branch,
        "commit": row.commit,
        "parent": row.parent_commit,
        "index": str(row.index),
        "status": row.status,
        "verdict": row.description[:5000],
        "launcher": row.launcher,
        "job_id": row.job_id or "none",
    }


def metric_key(name: str) -> str:
    """MLflow accepts letters, digits, _ - . / and spaces in a metric name (NeMo-RL's 'val:accuracy' has a colon)."""
    return re.sub(r"[^\w\-./ ]", "_", name)
