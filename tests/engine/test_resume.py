"""Session memory, resume after any interruption (SIGKILL at every journal step), oversight, secrets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from nrl_autoresearch.core.journal import STEPS, Journal
from tests.helpers import PY, cli, git, ledger_rows, make_repo, score_repo

INIT = [
    "init",
    "--command",
    f"{PY} train.py",
    "--metric",
    "val_score",
    "--maximize",
    "--params-file",
    "params.json",
    "--campaign",
    "mem",
]


def session_dir(repo: Path) -> Path:
    return sorted((repo / "session").iterdir())[-1]


def start_run(repo: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [PY, "-m", "nrl_autoresearch", "run", "--yes", *args],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def wait_for(predicate, timeout: float = 60, every: float = 0.05):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def test_session_files_hold_every_checkpoint_kind(tmp_path: Path):
    repo = score_repo(tmp_path / "r", wd=0.5)
    cli(repo, *INIT, "--max-experiments", "3", check=True)
    cli(repo, "steer", "prefer regularisation ideas", check=True)
    cli(repo, "run", "--yes", check=True)
    folder = session_dir(repo)
    assert sorted(p.name for p in folder.iterdir()) == ["files.md", "handoff.md", "session_state.md", "timeline.md"]
    timeline = (folder / "timeline.md").read_text()
    for kind in (
        "direction change",
        "plan",
        "before edit",
        "after edit",
        "before launch",
        "after launch",
        "result",
        "handoff",
    ):
        assert f"— {kind}\n" in timeline, kind
    handoff = (folder / "handoff.md").read_text()
    rows = ledger_rows(repo)
    assert "Objective: maximize `val_score`" in handoff and "target_experiment_count = 3" in handoff
    assert f"Last ledger index: {rows[-1]['index']}" in handoff and "autoresearch/" in handoff
    assert f"Latest run.log: `{rows[-1]['log_path']}`" in handoff
    state = (folder / "session_state.md").read_text()
    for heading in (
        "## Goal",
        "## Current Subtask",
        "## Loaded Skills",
        "## Current Status",
        "## Plan",
        "## Assumptions",
        "## Blockers",
    ):
        assert heading in state
    assert "steering (additive): prefer regularisation ideas" in state
    assert "## Generated" in (folder / "files.md").read_text()


def test_resume_report_only_restates_the_campaign_first(tmp_path: Path):
    repo = score_repo(tmp_path / "r")
    cli(repo, *INIT, "--stop", "5 experiments or 2h total, 10m each", check=True)
    cli(repo, "baseline", check=True)
    cli(repo, "try", "lr", "--set", "lr=0.05", check=True)
    out = cli(repo, "resume", "--report-only", check=True).stdout.splitlines()
    assert out[0] == "objective: maximize val_score (line:val_score)"
    assert out[1].startswith("stop rules: target_experiment_count = 5; campaign_deadline = ")
    assert out[1].endswith("per_experiment_timeout = 10m")
    assert out[2] == "current branch: main"
    assert out[3].startswith("latest result: [2] autoresearch/") and out[3].endswith("/lr keep 0.95")
    data = json.loads(cli(repo, "resume", "--report-only", "--json", check=True).stdout)
    assert data["latest"]["index"] == 2 and data["mismatches"] == [] and data["handoff"].endswith("handoff.md")
    assert "— recovery\n" in (session_dir(repo) / "timeline.md").read_text()


def test_steering_is_additive_unless_the_objective_is_replaced(tmp_path: Path):
    repo = score_repo(tmp_path / "r")
    cli(repo, *INIT, check=True)
    cli(repo, "steer", "also watch memory", check=True)
    state = (session_dir(repo) / "session_state.md").read_text()
    assert "maximize val_score" in state and "steering (additive): also watch memory" in state
    cli(repo, "steer", "--replace-objective", "minimise wall time at equal score", check=True)
    out = cli(repo, "resume", "--report-only", check=True).stdout
    assert out.startswith("objective: minimise wall time at equal score")


@pytest.mark.parametrize("step", ["intent", "branch", "committed", "launching", "launched", "finished", "row"])
def test_sigkill_at_each_journal_step_then_resume(tmp_path: Path, step: str):
    repo = score_repo(tmp_path / "r", sleep=1.0)
    cli(repo, *INIT, "--stop", "4 experiments or 2h total", check=True)
    deadline = json.loads((repo / "reports/auto_research/mem/campaign.json").read_text())["rules"]["deadline"]
    journal = repo / "reports/auto_research/mem/journal.jsonl"

    replay = Journal(journal)  # reads whole lines only: the engine may be half-way through writing one

    def reached():
        return journal.exists() and any(e.get("step") == step and e.get("index") == 2 for e in replay.events())

    engine = start_run(repo)
    wait_for(reached, every=0.002)
    children = psutil.Process(engine.pid).children(recursive=True)
    engine.send_signal(signal.SIGKILL)
    engine.wait(10)
    # the kill lands a moment after the step is seen: judge by the last step the journal replays, as recovery does
    last = Journal(journal).attempts()[2].step
    assert STEPS.index(last) >= STEPS.index(step)
    proc = cli(repo, "resume", "--yes", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = ledger_rows(repo)
    assert [r["index"] for r in rows] == [1, 2, 3, 4]
    interrupted = last in ("intent", "branch", "committed", "launching")  # the run never ran to its end
    reruns = [r for r in rows if "rerun of [2] (interrupted)" in r["description"]]
    assert len(reruns) == interrupted and (not reruns or reruns[0]["branch"] == rows[1]["branch"])
    assert len({r["branch"] for r in rows}) == 4 - interrupted
    heads = {r["branch"]: r["commit"] for r in rows}  # the last row of each branch is its head
    for row in rows:
        note = git(repo, "notes", "--ref", "autoresearch", "show", row["commit"])
        assert any(json.loads(line)["row"].split("\t")[0] == str(row["index"]) for line in note.splitlines())
    for branch, commit in heads.items():
        assert git(repo, "rev-parse", branch).strip() == commit
    assert cli(repo, "ledger", "check").returncode == 0
    again = json.loads((repo / "reports/auto_research/mem/campaign.json").read_text())["rules"]["deadline"]
    assert again == deadline
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


def test_ledger_rebuild_restores_the_tsv_byte_for_byte(tmp_path: Path):
    repo = score_repo(tmp_path / "r")
    cli(repo, *INIT, "--max-experiments", "3", check=True)
    cli(repo, "run", "--yes", check=True)
    tsv = repo / "reports/auto_research_results.tsv"
    original = tsv.read_bytes()
    tsv.unlink()
    assert "3 rows" in cli(repo, "ledger", "rebuild", check=True).stdout
    assert tsv.read_bytes() == original
    lines = original.decode().splitlines(keepends=True)
    tsv.write_text("".join(lines[:-1]))  # a damaged file: the last row lost
    check = cli(repo, "ledger", "check", "--json")
    assert check.returncode == 1
    assert any("that the TSV lacks" in p for p in json.loads(check.stdout)["problems"])


def test_pause_lets_the_run_finish_and_stop_ends_it(tmp_path: Path):
    repo = score_repo(tmp_path / "r", sleep=3.0, wd=0.5)
    cli(repo, *INIT, "--max-experiments", "6", check=True)
    log = repo / "reports/auto_research/mem/baseline/run.log"
    engine = start_run(repo)
    wait_for(log.exists)
    cli(repo, "pause", check=True)
    out, _ = engine.communicate(timeout=120)
    rows = ledger_rows(repo)
    assert [r["status"] for r in rows] == ["keep"], out
    assert "halted by the person (pause)" in out and "stop condition not yet met: 1/6 attempted" in out
    engine = start_run(repo)
    wait_for(lambda: len(list((repo / "reports/auto_research/mem").glob("*/run.log"))) >= 2)
    cli(repo, "stop", check=True)
    out, _ = engine.communicate(timeout=120)
    rows = ledger_rows(repo)
    assert len(rows) == 2 and rows[1]["status"] == "crash" and "stopped by the person" in rows[1]["description"], out


def test_no_secret_reaches_any_file_we_write(tmp_path: Path):
    secrets = {"WANDB_API_KEY": "wandb-secret-0123456789", "HF_TOKEN": "hf_secretsecretsecretsecret01"}
    repo = score_repo(tmp_path / "r")
    # the run really receives the token (it prints a digest of it, never the value)
    (repo / "train.py").write_text(
        (repo / "train.py").read_text()
        + ('import hashlib; print("token digest", hashlib.sha256(sys.argv[-1].encode()).hexdigest()[:12])\n')
    )
    git(repo, "commit", "-qam", "print a digest of the token")
    command = f"{PY} train.py --hf-token {secrets['HF_TOKEN']}"
    init = cli(
        repo,
        "init",
        "--command",
        command,
        "--metric",
        "val_score",
        "--maximize",
        "--params-file",
        "params.json",
        "--max-experiments",
        "3",
        "--campaign",
        "sec",
        env=secrets,
        check=True,
    )
    assert "${HF_TOKEN}" in init.stdout
    cli(repo, "run", "--yes", env=secrets, check=True)
    cli(repo, "steer", f"use token {secrets['HF_TOKEN']} for downloads", env=secrets, check=True)
    import hashlib

    digest = hashlib.sha256(secrets["HF_TOKEN"].encode()).hexdigest()[:12]
    assert digest in (repo / "reports/auto_research/sec/baseline/run.log").read_text()
    assert ledger_rows(repo)[0]["command"].endswith("train.py --hf-token '${HF_TOKEN}'")
    written = [p for p in [*(repo / "reports").rglob("*"), *(repo / "session").rglob("*")] if p.is_file()]
    assert len(written) > 10
    for path in written:
        text = path.read_text(errors="replace")
        for value in secrets.values():
            assert value not in text, (path, value)
    notes = git(repo, "log", "-p", "refs/notes/autoresearch")
    messages = git(repo, "log", "--all", "--format=%B")
    for value in secrets.values():
        assert value not in notes and value not in messages


def test_a_secret_that_cannot_be_referenced_is_refused(tmp_path: Path):
    repo = score_repo(tmp_path / "r")
    proc = cli(
        repo,
        "init",
        "--command",
        f"{PY} train.py --api-token tok-literal-secret",
        "--metric",
        "val_score",
        "--maximize",
    )
    assert proc.returncode == 2 and "environment variable" in proc.stderr
    assert not (repo / "reports").exists()


@pytest.mark.parametrize(
    "command, name",
    [
        (f"{PY} train.py --seed 1", "train"),
        (f"{PY} train.py --password ${{MY_PASSWORD}} --epochs 3", "train"),
        (f"{PY} -m recipes.ppo --seed 3", "ppo"),
    ],
)
def test_the_campaign_is_named_from_the_script_never_from_an_argument(tmp_path: Path, command: str, name: str):
    repo = score_repo(tmp_path / "r")
    proc = cli(
        repo,
        "init",
        "--command",
        command,
        "--metric",
        "val_score",
        "--maximize",
        "--json",
        env={"MY_PASSWORD": "hunter2-hunter2"},
        check=True,
    )
    assert json.loads(proc.stdout)["campaign"]["name"] == f"{time.strftime('%Y-%m-%d')}-{name}"
    assert "hunter2" not in proc.stdout


def test_flags_named_like_secrets_are_secrets_on_the_command_line(tmp_path: Path):
    repo = score_repo(tmp_path / "r")
    for flag in ("--wandb-key", "--auth-header"):
        proc = cli(
            repo, "init", "--command", f"{PY} train.py {flag} literal-value-123", "--metric", "val_score", "--maximize"
        )
        assert proc.returncode == 2 and "environment variable" in proc.stderr and "literal-value" not in proc.stderr
    assert not (repo / "reports").exists()


def test_descriptions_steering_and_run_logs_never_hold_a_known_secret(tmp_path: Path):
    secret = "hf_abcdefghijklmnopqrstuvwx0123"
    env = {"HF_TOKEN": secret}
    repo = score_repo(tmp_path / "r")
    (repo / "train.py").write_text(
        (repo / "train.py").read_text() + 'import os; print("using", os.environ["HF_TOKEN"], "ok")\n'
    )
    git(repo, "commit", "-qam", "print the token")
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
        "--max-experiments",
        "3",
        "--campaign",
        "sec",
        env=env,
        check=True,
    )
    cli(repo, "baseline", env=env, check=True)
    cli(repo, "try", "lr", "--set", "lr=0.05", "--desc", f"token {secret} here", env=env, check=True)
    cli(repo, "steer", f"replace with {secret}", "--replace-objective", env=env, check=True)
    log = (repo / "reports/auto_research/sec/baseline/run.log").read_text()
    assert "using *** ok" in log and "val_score: 0.9100" in log
    for path in (repo / "reports").rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path
    journal = (repo / "reports/auto_research/sec/journal.jsonl").read_text()
    assert "token *** here" in journal


def test_an_interrupted_baseline_repeat_is_rerun_on_resume_before_any_verdict_uses_the_spread(tmp_path: Path):
    mark = tmp_path / "slept"
    train = (
        "import argparse, json, os, time\np = argparse.ArgumentParser(); p.add_argument('--seed', type=int, default=1)\n"
        "seed = p.parse_args().seed\ncfg = json.load(open('params.json'))\n"
        f"if seed == 1001 and not os.path.exists({str(mark)!r}):\n    open({str(mark)!r}, 'w').close(); time.sleep(30)\n"
        "print(f'val_score: {1 - abs(cfg[\"lr\"] - 0.1) + seed / 1e5:.5f}')\n"
    )
    repo = make_repo(tmp_path / "r", {"train.py": train, "params.json": '{"lr": 0.2}\n'})
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
        "--seed-flag",
        "--seed",
        "--baseline-repeats",
        "3",
        "--max-experiments",
        "7",
        "--campaign",
        "c",
        check=True,
    )
    engine = subprocess.Popen(
        [PY, "-m", "nrl_autoresearch", "baseline"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log = repo / "reports/auto_research/c/baseline-r2/run.log"
    deadline = time.time() + 60
    while not log.exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    engine.send_signal(signal.SIGINT)
    engine.communicate(timeout=60)
    rows = ledger_rows(repo)
    assert [r["status"] for r in rows] == ["keep", "crash", "crash"]
    plan = cli(repo, "run", "--yes", "--proposer", "catalog")
    assert plan.returncode == 0, plan.stderr
    assert "interrupted runs: 2 re-run first" in plan.stdout
    rows = ledger_rows(repo)
    assert "rerun of [2] (interrupted), seed 1001" in rows[3]["description"]
    assert "rerun of [3] (interrupted), seed 1002" in rows[4]["description"]
    assert rows[3]["commit"] == rows[0]["commit"] and rows[4]["branch"] == rows[0]["branch"]
    assert "over 3 runs" in rows[5]["description"], rows[5]["description"]  # the spread rests on all three


def test_an_interrupted_hypothesis_is_rerun_on_its_commit_in_a_row_that_says_so(tmp_path: Path):
    mark = tmp_path / "slept"
    train = (
        "import json, os, time\ncfg = json.load(open('params.json'))\n"
        f"if cfg['lr'] == 0.05 and not os.path.exists({str(mark)!r}):\n"
        f"    open({str(mark)!r}, 'w').close(); time.sleep(30)\n"
        "print(f'val_score: {1 - abs(cfg[\"lr\"] - 0.1):.4f}')\n"
    )
    repo = make_repo(tmp_path / "r", {"train.py": train, "params.json": '{"lr": 0.2}\n'})
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
        "--max-experiments",
        "4",
        "--campaign",
        "c",
        check=True,
    )
    cli(repo, "baseline", check=True)
    engine = subprocess.Popen(
        [PY, "-m", "nrl_autoresearch", "try", "lr-half", "--set", "lr=0.05"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 60
    while not mark.exists() and time.time() < deadline:
        time.sleep(0.1)
    engine.send_signal(signal.SIGINT)
    engine.communicate(timeout=60)
    assert [r["status"] for r in ledger_rows(repo)] == ["keep", "crash"]
    proc = cli(repo, "run", "--yes", "--proposer", "catalog")
    assert proc.returncode == 0, proc.stderr
    rows = ledger_rows(repo)
    assert rows[2]["commit"] == rows[1]["commit"] and "rerun of [2] (interrupted)" in rows[2]["description"]
    assert rows[2]["status"] == "keep"
