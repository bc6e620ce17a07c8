"""`init --mlflow URI` against a real MLflow tracking server (SQLite backend) on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import PY, cli, git, ledger_rows, make_repo, score_repo
from tests.lab.mlflow_server import forwarding, free_port

mlflow = pytest.importorskip("mlflow")
from mlflow.entities import Run  # noqa: E402 (only once importorskip found mlflow)
from mlflow.tracking import MlflowClient  # noqa: E402


def campaign(tmp_path: Path, uri: str) -> Path:
    repo = score_repo(tmp_path / "r")
    cli(
        repo,
        "init",
        "--command",
        f"{PY} train.py",
        "--metric",
        "val_score",
        "--maximize",
        "--params-file",
        "params.json",
        "--campaign",
        f"c-{tmp_path.name}",
        "--mlflow",
        uri,
        check=True,
    )
    return repo


def runs(uri: str, repo: Path) -> dict[str, Run]:
    """The campaign's MLflow runs by their row index."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(json.loads(_campaign_json(repo))["name"])
    return {r.data.tags["index"]: r for r in client.search_runs([experiment.experiment_id])} if experiment else {}


def _campaign_json(repo: Path) -> str:
    return next((repo / "reports/auto_research").glob("*/campaign.json")).read_text()


def journal(repo: Path) -> Path:
    return next((repo / "reports/auto_research").glob("*/journal.jsonl"))


@pytest.mark.mlflow
def test_every_row_becomes_one_mlflow_run_and_a_resume_never_duplicates(tmp_path: Path, mlflow_server):
    repo = campaign(tmp_path, mlflow_server.url)
    cli(repo, "baseline", check=True)
    cli(repo, "try", "lr2", "--set", "lr=0.05", check=True)
    cli(repo, "try", "broken", "--set", "lr=oops", check=True)
    found = runs(mlflow_server.url, repo)
    assert sorted(found) == ["1", "2", "3"]
    lr2 = found["2"]
    assert lr2.data.params == {"lr": "0.05"} and lr2.data.metrics["final/val_score"] == pytest.approx(0.95)
    assert lr2.data.tags["branch"].endswith("/lr2") and lr2.data.tags["status"] == "keep"
    assert lr2.data.tags["launcher"] == "local" and len(lr2.data.tags["commit"]) == 40
    assert lr2.info.run_name == "2 lr2" and lr2.info.status == "FINISHED"
    history = MlflowClient(mlflow_server.url).get_metric_history(lr2.info.run_id, "val_score")
    assert [m.value for m in history] == [pytest.approx(0.95)]
    assert found["3"].info.status == "FAILED" and "final/val_score" not in found["3"].data.metrics
    assert [found[i].data.metrics["gpu_hours"] for i in "123"] == [0.0] * 3  # CPU-only runs hold no GPU
    # the journal keeps each run id; lose those lines and the runs are still found by their index tag
    lines = journal(repo).read_text().splitlines()
    assert sum('"step": "mlflow"' in line for line in lines) == 3
    journal(repo).write_text("".join(line + "\n" for line in lines if '"step": "mlflow"' not in line))
    cli(repo, "try", "lr3", "--set", "lr=0.1", check=True)
    assert sorted(runs(mlflow_server.url, repo)) == ["1", "2", "3", "4"]


@pytest.mark.mlflow
@pytest.mark.ray
def test_each_run_logs_its_gpu_hours_on_the_gpus_the_scheduler_gave_it(tmp_path: Path, mlflow_server, ray_cluster):
    repo = score_repo(tmp_path / "r", sleep=1)
    cli(
        repo,
        "init",
        "--command",
        f"{PY} train.py",
        "--metric",
        "val_score",
        "--maximize",
        "--params-file",
        "params.json",
        "--campaign",
        f"c-{tmp_path.name}",
        "--mlflow",
        mlflow_server.url,
        "--launcher",
        "ray",
        "-L",
        f"address={ray_cluster.address}",
        "-L",
        "entrypoint_num_gpus=2",
        "-L",
        "poll_s=0.5",
        check=True,
    )
    cli(repo, "baseline", check=True)
    [row] = ledger_rows(repo)
    status = json.loads(cli(repo, "status", "--json", check=True).stdout)["gpu_hours"]
    logged = runs(mlflow_server.url, repo)["1"].data.metrics
    assert status["gpus_per_run"] == 2 and logged["gpu_hours"] == pytest.approx(status["used"]) and status["used"] > 0
    # the ledger keeps minutes to one decimal: the GPU-hours are the run's seconds on 2 GPUs, within that rounding
    assert logged["gpu_hours"] == pytest.approx(logged["elapsed_min"] / 60 * 2, abs=0.05 / 60 * 2)
    assert row["elapsed_min"] == pytest.approx(logged["elapsed_min"], abs=0.051)  # the ledger keeps one decimal


@pytest.mark.mlflow
def test_a_tracker_that_is_down_never_stops_the_campaign_and_is_caught_up_with(tmp_path: Path, mlflow_server):
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    repo = campaign(tmp_path, uri)
    proc = cli(repo, "baseline", check=True)
    assert f"MLflow at {uri} not reached (ConnectionRefusedError): 1 row(s) will be logged" in proc.stdout
    with forwarding(port, mlflow_server.url):  # the tracker comes up at its address
        cli(repo, "try", "lr2", "--set", "lr=0.05", check=True)
        assert sorted(runs(uri, repo)) == ["1", "2"]


def test_bad_tracking_uris_are_refused_and_nothing_created(tmp_path: Path):
    repo = score_repo(tmp_path / "r")
    for uri, said in [("127.0.0.1:5000", "give a tracking URI"), ("http://me:s3cretpw@127.0.0.1:5000", "credentials")]:
        proc = cli(repo, "init", "--command", f"{PY} train.py", "--metric", "val_score", "--mlflow", uri)
        assert proc.returncode == 2 and said in proc.stderr and "s3cretpw" not in proc.stderr, proc.stderr
    assert not (repo / "reports").exists()


# what NeMo-RL's MLflow logger does: an experiment and a named run, metrics logged by step, the run ended
LOGGER = """\
import json, os
os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 2's default store, kept behind a switch by MLflow 3
import mlflow
cfg = json.load(open("params.json"))
if cfg.get("tracking_uri"):
    mlflow.set_tracking_uri(cfg["tracking_uri"])
mlflow.set_experiment("grpo-dev")
with mlflow.start_run(run_name="grpo-dev-logger"):
    for step in (1, 2, 3):
        mlflow.log_metrics({"validation/accuracy": cfg["lr"] * step, "train/loss": 1 / step}, step=step)
"""


def read_from(repo: Path, row: dict) -> str:
    """Where the row's value was read, as its git note records it."""
    return json.loads(git(repo, "notes", "--ref", "autoresearch", "show", row["commit"]))["extra"]["metric_source"]


def logger_campaign(tmp_path: Path, tracking_uri: str | None) -> Path:
    params = {"lr": 0.1, **({"tracking_uri": tracking_uri} if tracking_uri else {})}
    repo = make_repo(tmp_path / "r", {"train.py": LOGGER, "params.json": json.dumps(params) + "\n"})
    cli(
        repo,
        "init",
        "--command",
        f"{PY} train.py",
        "--metric",
        "validation/accuracy",
        "--maximize",
        "--metric-source",
        "mlflow:validation/accuracy",
        "--params-file",
        "params.json",
        check=True,
    )
    cli(repo, "baseline", check=True)
    cli(repo, "try", "lr2", "--set", "lr=0.2", check=True)
    return repo


@pytest.mark.mlflow
def test_the_objective_is_read_from_the_run_on_a_tracking_server(tmp_path: Path, mlflow_server):
    repo = logger_campaign(tmp_path, mlflow_server.url)
    rows = ledger_rows(repo)
    assert [(r["status"], r["metric_value"]) for r in rows] == [
        ("keep", pytest.approx(0.3)),
        ("keep", pytest.approx(0.6)),
    ]
    assert read_from(repo, rows[1]).endswith(f"at {mlflow_server.url}")


@pytest.mark.parametrize(
    "tracking_uri, store", [(None, "/worktrees/lr2/mlflow.db"), ("mlruns", "/metrics/validation/accuracy")]
)
def test_the_objective_is_read_from_the_local_store_the_run_wrote(tmp_path: Path, tracking_uri: str | None, store: str):
    repo = logger_campaign(tmp_path, tracking_uri)
    rows = ledger_rows(repo)
    assert [(r["status"], r["metric_value"]) for r in rows] == [
        ("keep", pytest.approx(0.3)),
        ("keep", pytest.approx(0.6)),
    ]
    assert read_from(repo, rows[1]).endswith(store)
