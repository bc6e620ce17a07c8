"""`wandb:KEY` on the files the real `wandb` package writes in offline mode, each run a real process."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest

from nrl_autoresearch.core.metric import Census, RunOutputs, aggregate
from nrl_autoresearch.metrics import parse_source
from nrl_autoresearch.metrics.wandb_files import WandbLog
from tests.helpers import PY, cli, git, ledger_rows, make_repo

pytest.importorskip("wandb")

# logs each row of the spec given as its argument (at the step its "at" says, if any), then sets the summary's
# keys, as a training script would
LOGGER = """\
import json, sys, wandb
spec = json.loads(sys.argv[1])
run = wandb.init(project="autoresearch-test", config={"lr": 0.1})
for row in spec.get("rows", []):
    wandb.log(row, step=row.pop("at", None))
for key, value in spec.get("summary", {}).items():
    run.summary[key] = value
wandb.finish()
"""


@pytest.fixture
def offline(tmp_path: Path) -> dict[str, str]:
    """W&B in offline mode with its own config and cache folders: nothing reaches the network or the home folder."""
    home = tmp_path / "wandb-home"
    return {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_CONFIG_DIR": str(home / "config"),
        "WANDB_CACHE_DIR": str(home / "cache"),
        "WANDB_DATA_DIR": str(home / "data"),
    }


def log_run(folder: Path, env: dict[str, str], rows: list[dict], summary: dict | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "log_wandb.py"
    script.write_text(LOGGER)
    spec = json.dumps({"rows": rows, "summary": summary or {}})
    subprocess.run(
        [PY, str(script), spec],
        cwd=folder,
        env={**os.environ, **env, "WANDB_DIR": str(folder)},
        check=True,
        timeout=240,
        capture_output=True,
    )


def read(folder: Path, key: str, before: Census | None = None):
    outputs = RunOutputs(folder / "run.log", folder, folder, before or Census())
    return parse_source(f"wandb:{key}").read(outputs)


def test_the_curve_comes_from_history_and_the_final_value_from_the_summary(tmp_path: Path, offline):
    """Over 32 KiB of records (a record split across blocks), explicit steps, a nested key, a text value."""
    folder = tmp_path / "exp"
    rows = [
        {"val/acc": step / 1000, "loss": 1 / (step + 1), "eval": {"acc": step / 100}, "note": "x" * 50}
        for step in range(300)
    ]
    rows += [{"val/acc": 0.5, "note": "y" * 40000, "at": 500}, {"loss": 0.01}]  # adds to step 500, ends it
    log_run(folder, offline, rows, summary={"val/acc": 0.75, "best": {"acc": 0.9}})
    [log_file] = list(folder.glob("wandb/offline-run-*/run-*.wandb"))
    assert log_file.stat().st_size > 2 * 32768
    reading = read(folder, "val/acc")
    assert [p.step for p in reading.points] == [*range(300), 500, 500]
    assert [p.value for p in reading.points] == pytest.approx([s / 1000 for s in range(300)] + [0.5, 0.75])
    assert reading.problem is None and reading.source == f"W&B key val/acc in {log_file.resolve()}"
    assert all(p.wall_time and p.wall_time > 1e9 for p in reading.points[:-1])
    assert aggregate(reading.points, "last", maximize=True) == pytest.approx(0.75)
    assert [p.value for p in read(folder, "eval.acc").points][-2:] == pytest.approx([2.98, 2.99])
    assert [(p.step, p.value) for p in read(folder, "best.acc").points] == [(500, pytest.approx(0.9))]
    # `acc` alone is no key of this run, though `eval.acc` ends with it
    assert (
        read(folder, "acc").problem
        == "W&B key acc was never logged: the run logged best, eval.acc, loss, note, val/acc"
    )
    note = read(folder, "note")
    assert note.points == [] and note.problem == f'W&B key note is "{"x" * 39}... at step 0, not a number'
    # what online mode adds: the summary file, whose value is the final one
    (log_file.parent / "files" / "wandb-summary.json").write_text(json.dumps({"val/acc": 0.8, "_step": 500}))
    assert read(folder, "val/acc").points[-1].value == pytest.approx(0.8)
    # a run still writing: its torn last record is left out, the records before it are read
    whole = WandbLog.parse(log_file.read_bytes())
    assert len(WandbLog.parse(log_file.read_bytes()[:-100]).history) == len(whole.history) == 301


def test_several_runs_in_one_folder_each_read_only_its_own_files(tmp_path: Path, offline):
    folder = tmp_path / "exp"
    log_run(folder, offline, [{"val/acc": 0.5}])
    before_second = Census.take(folder)
    log_run(folder, offline, [{"loss": 0.3, "train/lr": 0.1}])
    missing = read(folder, "val/acc", before_second)
    assert missing.points == [] and missing.problem == "W&B key val/acc was never logged: the run logged loss, train/lr"
    before_third = Census.take(folder)
    log_run(folder, offline, [{"val/acc": 0.7}, {"val/acc": 0.72}])
    assert [p.value for p in read(folder, "val/acc", before_third).points] == pytest.approx([0.7, 0.72])
    assert [p.value for p in read(folder, "val/acc", before_second).points] == pytest.approx([0.7, 0.72])
    assert [p.value for p in read(folder, "val/acc").points] == pytest.approx([0.7, 0.72])  # no census: the newest
    assert read(folder, "val/acc", Census.take(folder)) is None
    assert len(list(folder.glob("wandb/offline-run-*"))) == 3


def test_a_nan_value_is_read_as_nan(tmp_path: Path, offline):
    log_run(tmp_path / "exp", offline, [{"val/acc": 0.4}, {"val/acc": math.nan}])
    reading = read(tmp_path / "exp", "val/acc")
    assert reading.problem is None and reading.points[0].value == pytest.approx(0.4)
    last = aggregate(reading.points, "last", maximize=True)
    assert math.isnan(reading.points[1].value) and last is not None and math.isnan(last)


TRAIN = """\
import json, wandb
cfg = json.load(open("params.json"))
wandb.init(project="toy", config=cfg)
for step in range(1, 4):
    wandb.log({"val/acc": float(cfg["acc"]) * step / 3, "train/loss": 1 / step})
wandb.finish()
"""


def test_a_campaign_reads_its_objective_from_w_and_b(tmp_path: Path, offline):
    repo = make_repo(tmp_path / "r", {"train.py": TRAIN, "params.json": '{"acc": 0.5}\n'})
    cli(
        repo,
        "init",
        "--command",
        f"{PY} train.py",
        "--metric",
        "wandb:val/acc",
        "--maximize",
        "--params-file",
        "params.json",
        env=offline,
        check=True,
    )
    cli(repo, "baseline", env=offline, check=True)
    cli(repo, "try", "acc-up", "--set", "acc=0.8", env=offline, check=True)
    cli(repo, "try", "diverged", "--set", "acc=nan", env=offline, check=True)
    rows = ledger_rows(repo)
    assert [(r["metric_name"], r["status"]) for r in rows] == [
        ("val/acc", "keep"),
        ("val/acc", "keep"),
        ("val/acc", "crash"),
    ]
    assert [r["metric_value"] for r in rows[:2]] == [pytest.approx(0.5), pytest.approx(0.8)]
    assert rows[2]["metric_value"] is None and "nan" in rows[2]["description"]
    note = json.loads(git(repo, "notes", "--ref", "autoresearch", "show", rows[1]["commit"]))
    source = note["extra"]["metric_source"]
    assert source.startswith("W&B key val/acc in ") and "/worktrees/acc-up/wandb/offline-run-" in source
    assert not git(repo, "status", "--porcelain")  # W&B wrote into each experiment's worktree, not the person's
    assert "wandb/" not in git(repo, "log", "--all", "--name-only", "--format=")


def test_a_wandb_source_without_a_key_is_refused_and_nothing_created(tmp_path: Path):
    repo = make_repo(tmp_path / "r", {"train.py": TRAIN, "params.json": '{"acc": 0.5}\n'})
    for metric in (["--metric", "wandb:"], ["--metric", "val/acc", "--metric-source", "wandb:"]):
        proc = cli(repo, "init", "--command", f"{PY} train.py", *metric, "--maximize")
        said = "give the key the run logs with wandb.log (wandb:val/acc)"
        assert proc.returncode == 2 and said in proc.stderr, proc.stderr
    assert not (repo / "reports").exists()
