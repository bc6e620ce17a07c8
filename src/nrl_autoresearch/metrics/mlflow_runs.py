"""`mlflow:METRIC`: the objective as the run's own MLflow logger recorded it (NeMo-RL's `logger.mlflow_enabled`).

The run is found from what it left, newest first: the "View run ... at: URL/#/experiments/E/runs/ID" line that
MLflow prints when a run against a tracking server ends (its history is then read over MLflow's REST API), else
a SQLite store (`mlflow.db`, MLflow 3's default in the working directory) or a file store (`mlruns/`, MLflow 2's)
that this run wrote. No MLflow import is needed to read.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.metric import MetricSource, Point, Reading, RunOutputs

_VIEW_RUN = re.compile(r"View run .*? at: (https?://\S+?)/#/experiments/\w+/runs/([0-9a-f]{32})")
_SQLITE = re.compile(r"^mlflow\.db$")


class Mlflow(MetricSource):
    kind = "mlflow"

    def __init__(self, arg: str):
        super().__init__(arg)
        if not arg or arg.strip() != arg:
            raise UsageError(
                "bad --metric-source 'mlflow:': give the MLflow metric name, e.g. mlflow:validation/accuracy"
            )

    def read(self, run: RunOutputs) -> Reading | None:
        for find in (self._from_server, self._from_sqlite, self._from_files):
            reading = find(run)
            if reading is not None:
                return reading
        return None

    def _from_server(self, run: RunOutputs) -> Reading | None:
        found = _VIEW_RUN.findall(run.log_text())
        if not found:
            return None
        base, run_id = found[-1]
        query = urllib.parse.urlencode({"run_id": run_id, "metric_key": self.arg})
        try:
            with urllib.request.urlopen(
                _request(f"{base}/api/2.0/mlflow/metrics/get-history?{query}"), timeout=30
            ) as r:
                history = json.loads(r.read()).get("metrics", [])
        except (urllib.error.URLError, OSError, ValueError) as err:
            return Reading([], f"MLflow run {run_id} at {base}", f"its history could not be read: {err}")
        return _reading(
            [(m.get("step", 0), m["value"], m.get("timestamp")) for m in history],
            f"MLflow metric {self.arg} of run {run_id} at {base}",
        )

    def _from_sqlite(self, run: RunOutputs) -> Reading | None:
        for db in reversed(run.files(_SQLITE)):
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                    rows = conn.execute(
                        "SELECT m.step, m.value, m.timestamp FROM metrics m WHERE m.key = ? AND m.run_uuid = "
                        "(SELECT r.run_uuid FROM runs r JOIN metrics k ON k.run_uuid = r.run_uuid WHERE k.key = ? "
                        "ORDER BY r.start_time DESC LIMIT 1) ORDER BY m.step, m.timestamp",
                        (self.arg, self.arg),
                    ).fetchall()
            except sqlite3.Error:
                continue
            if rows:
                return _reading(rows, f"MLflow metric {self.arg} in {db}")
        return None

    def _from_files(self, run: RunOutputs) -> Reading | None:
        name = re.compile(rf"^{re.escape(Path(self.arg).name)}$")
        for path in reversed(run.files(name)):
            if path.as_posix().endswith("/metrics/" + self.arg) and "mlruns" in path.parts:
                lines = [line.split() for line in run.new_text(path).splitlines() if line.strip()]
                return _reading(
                    [(int(p[2]) if len(p) > 2 else 0, float(p[1]), int(p[0])) for p in lines],
                    f"MLflow metric {self.arg} in {path}",
                )
        return None


def _reading(rows, where: str) -> Reading | None:
    points = [Point(float(step), float(value), float(ts) / 1000 if ts else None) for step, value, ts in rows]
    return Reading(points, where) if points else None


def _request(url: str) -> urllib.request.Request:
    """MLflow's own credential variables, as its client sends them."""
    headers = {}
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        headers["Authorization"] = "Bearer " + os.environ["MLFLOW_TRACKING_TOKEN"]
    elif os.environ.get("MLFLOW_TRACKING_USERNAME"):
        pair = f"{os.environ['MLFLOW_TRACKING_USERNAME']}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    return urllib.request.Request(url, headers=headers)
