"""The campaign engine end to end through the real command line, on real git repositories."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import psutil
import pytest

from nrl_autoresearch.core.ledger import COLUMNS, HEADER
from tests.helpers import PY, cli, git, ledger_rows, make_repo, score_repo, tree_digest

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
    "project",
]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return score_repo(tmp_path / "project")


def test_baseline_and_experiments_record_exact_ledger_rows(repo: Path):
    cli(repo, *INIT, "--max-experiments", "4", check=True)
    assert (repo / "reports/auto_research_results.tsv").read_text() == HEADER
    cli(repo, "baseline", check=True)
    cli(repo, "try", "lr-up", "--set", "lr=0.05", "--desc", "raise the learning rate", check=True)
    cli(repo, "try", "lr-way-up", "--set", "lr=0.5", check=True)
    rows = ledger_rows(repo)
    assert [r["status"] for r in rows] == ["keep", "keep", "discard"]
    assert [r["index"] for r in rows] == [1, 2, 3]
    assert rows[0]["metric_value"] == pytest.approx(0.91)
    assert rows[1]["metric_value"] == pytest.approx(0.95)
    assert "+0.04 vs baseline" in rows[1]["description"]
    lines = (repo / "reports/auto_research_results.tsv").read_text().splitlines()
    assert lines[0].split("\t") == list(COLUMNS)
    assert all(len(line.split("\t")) == 15 for line in lines)
    prefix = rows[0]["branch"].rsplit("/", 1)[0]
    assert prefix.startswith("autoresearch/") and rows[1]["branch"] == f"{prefix}/lr-up"
    # the baseline is an empty commit on top of the starting point; experiments branch from it
    head = git(repo, "rev-parse", "main").strip()
    assert rows[0]["parent_commit"] == head
    assert git(repo, "log", "-1", "--format=%s", rows[0]["commit"]).strip() == "baseline: record starting point"
    assert rows[1]["parent_commit"] == rows[0]["commit"]
    # one hypothesis-focused commit touching only the params file
    assert git(repo, "show", "--name-only", "--format=", rows[1]["commit"]).split() == ["params.json"]
    assert json.loads(git(repo, "show", f"{rows[1]['commit']}:params.json"))["lr"] == 0.05
    assert rows[1]["log_path"] == "reports/auto_research/project/lr-up/run.log"
    assert "val_score: 0.9500" in (repo / rows[1]["log_path"]).read_text()
    # git alone shows the row: a note on the experiment commit
    note = git(repo, "notes", "--ref", "autoresearch", "show", rows[1]["commit"])
    assert json.loads(note.splitlines()[0])["row"] == lines[2] + "\n"


def test_user_tree_index_and_branch_are_byte_identical(repo: Path):
    (repo / "params.json").write_text('{"lr": 0.3}\n')  # modified, unstaged
    (repo / "notes.txt").write_text("staged work\n")
    git(repo, "add", "notes.txt")  # staged
    (repo / "scratch.py").write_text("print('untracked')\n")  # untracked
    git(repo, "checkout", "-q", "-b", "my-feature")
    before = tree_digest(repo)
    init = cli(repo, *INIT, "--max-experiments", "3", check=True)
    assert "params.json" in init.stdout and "scratch.py" in init.stdout  # unrelated changes are listed
    cli(repo, "baseline", check=True)
    cli(repo, "try", "lr", "--set", "lr=0.08", check=True)
    new = cli(repo, "new", "by-hand", check=True)
    worktree = Path(new.stdout.splitlines()[0])
    assert (
        new.stdout.splitlines()[1].startswith("next: edit the files there")
        and "'autoresearch try by-hand'" in new.stdout
    )
    (worktree / "params.json").write_text('{"lr": 0.1, "sleep": 0}\n')
    cli(repo, "try", "by-hand", check=True)
    assert tree_digest(repo) == before
    rows = ledger_rows(repo)
    assert rows[2]["metric_value"] == pytest.approx(1.0)
    # experiments start from the commit, not from the person's uncommitted edit (lr 0.3)
    assert rows[0]["metric_value"] == pytest.approx(0.91)


def test_hanging_command_whose_children_ignore_sigterm_is_killed_whole(tmp_path: Path):
    hang = """\
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
kids = [subprocess.Popen([sys.executable, "-c", "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])]
# a grandchild that leaves the process group, as daemons do
kids.append(subprocess.Popen([sys.executable, "-c", "import os,signal,time; os.setsid(); signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"]))
open("pids.txt", "w").write(" ".join(str(k.pid) for k in kids) + f" {os.getpid()}")
print("started", flush=True)
time.sleep(600)
"""
    repo = make_repo(tmp_path / "hang", {"hang.py": hang})
    cli(
        repo,
        "init",
        "--command",
        f"{PY} hang.py",
        "--metric",
        "score",
        "--maximize",
        "--per-experiment",
        "3s",
        "--max-experiments",
        "2",
        "--grace",
        "1s",
        check=True,
    )
    started = time.time()
    proc = cli(repo, "baseline")
    assert proc.returncode == 4 and "reached its wall-clock limit" in proc.stderr, proc.stderr
    assert time.time() - started < 60
    row = ledger_rows(repo)[0]
    assert row["status"] == "crash" and "timeout" in row["description"]
    worktree_pids = next((repo / "reports/auto_research").rglob("pids.txt")).read_text().split()
    for pid in map(int, worktree_pids):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_missing_metric_and_nan_are_crashes_never_zero(tmp_path: Path):
    script = 'import json; v = json.load(open("params.json"))["v"]; print(f"score: {v}") if v != "none" else print("no metric here")\n'
    repo = make_repo(tmp_path / "p", {"t.py": script, "params.json": '{"v": 0.5}\n'})
    cli(
        repo,
        "init",
        "--command",
        f"{PY} t.py",
        "--metric",
        "score",
        "--maximize",
        "--params-file",
        "params.json",
        "--max-experiments",
        "5",
        check=True,
    )
    cli(repo, "baseline", check=True)
    cli(repo, "try", "gone", "--set", "v=none", check=True)
    cli(repo, "try", "diverged", "--set", "v=nan", check=True)
    cli(repo, "try", "failed-exit", "--set", "v=[1", check=True)
    rows = ledger_rows(repo)
    assert [r["status"] for r in rows] == ["keep", "crash", "crash", "crash"]
    tsv = (repo / "reports/auto_research_results.tsv").read_text().splitlines()
    assert tsv[2].split("\t")[6:8] == ["0.000000", "0.0"]
    assert "no score found" in rows[1]["description"] and "nan" in rows[2]["description"].lower()
    notes = next((repo / "reports/auto_research").glob("*/notes.md")).read_text()
    assert "no metric here" in notes  # the log tail is quoted for the crash


def test_minimised_metric_best_and_min_delta(tmp_path: Path):
    script = 'import json; print("loss =", json.load(open("p.json"))["loss"])\n'
    repo = make_repo(tmp_path / "m", {"t.py": script, "p.json": '{"loss": 1.0}\n'})
    cli(
        repo,
        "init",
        "--command",
        f"{PY} t.py",
        "--metric",
        "loss",
        "--minimize",
        "--params-file",
        "p.json",
        "--min-delta",
        "0.05",
        "--max-experiments",
        "6",
        check=True,
    )
    cli(repo, "baseline", check=True)
    cli(repo, "try", "lower", "--set", "loss=0.5", check=True)
    cli(repo, "try", "tiny-gain", "--set", "loss=0.98", check=True)  # within min-delta
    cli(repo, "try", "higher", "--set", "loss=2.0", check=True)
    cli(repo, "try", "on-best", "--parent", "best", "--set", "loss=0.4", check=True)
    rows = ledger_rows(repo)
    assert [r["status"] for r in rows] == ["keep", "keep", "discard", "discard", "keep"]
    assert "vs best keep lower 0.5" in rows[4]["description"]
    status = json.loads(cli(repo, "status", "--json", check=True).stdout)
    assert status["best_keep"]["metric_value"] == pytest.approx(0.4)


def test_flags_style_records_flags_in_a_committed_file(tmp_path: Path):
    script = 'import argparse; p = argparse.ArgumentParser(); p.add_argument("--lr", type=float, default=0.01); a = p.parse_args(); print(f"acc: {1 - abs(a.lr - 0.1):.3f}")\n'
    repo = make_repo(tmp_path / "f", {"t.py": script})
    cli(
        repo,
        "init",
        "--command",
        f"{PY} t.py",
        "--metric",
        "acc",
        "--maximize",
        "--set-style",
        "flags",
        "--max-experiments",
        "3",
        check=True,
    )
    cli(repo, "baseline", check=True)
    cli(repo, "try", "lr", "--set", "lr=0.1", check=True)
    cli(repo, "try", "lr-more", "--parent", "lr", "--set", "lr=0.2", check=True)
    rows = ledger_rows(repo)
    assert rows[1]["command"].endswith("t.py --lr 0.1") and rows[1]["metric_value"] == pytest.approx(1.0)
    assert json.loads(git(repo, "show", f"{rows[1]['commit']}:.autoresearch/flags.json")) == {"lr": "0.1"}
    assert rows[2]["command"].endswith("--lr 0.2")


def test_taken_names_get_a_suffix_and_outputs_are_never_committed(tmp_path: Path):
    script = 'import json, os; os.makedirs("ckpt", exist_ok=True); open("ckpt/model.pt", "wb").write(b"0" * 10); open("train.log", "w").write("x"); print("score:", json.load(open("p.json"))["x"])\n'
    repo = make_repo(tmp_path / "s", {"t.py": script, "p.json": '{"x": 1}\n'})
    cli(
        repo,
        "init",
        "--command",
        f"{PY} t.py",
        "--metric",
        "score",
        "--maximize",
        "--params-file",
        "p.json",
        "--max-experiments",
        "4",
        check=True,
    )
    cli(repo, "baseline", check=True)
    cli(repo, "try", "idea", "--set", "x=2", check=True)
    cli(repo, "try", "idea", "--set", "x=3", check=True)
    rows = ledger_rows(repo)
    assert rows[1]["branch"].endswith("/idea") and rows[2]["branch"].endswith("/idea-2")
    for row in rows[1:]:
        assert git(repo, "show", "--name-only", "--format=", row["commit"]).split() == ["p.json"]
    branches = git(repo, "branch", "--list", "--format=%(refname:short)", "autoresearch/*").split()
    assert len(branches) == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--metric-source", "bogus:x"], "unknown --metric-source"),
        (["--metric-source", "regex:no group"], "exactly one capture group"),
        (["--budget", "ten hours"], "bad --budget"),
        (["--stop", "50 experiments or forever"], "could not read 'forever'"),
        (["--prefix", "bad..prefix"], "bad --prefix"),
        (["--campaign", "has space"], "bad campaign name"),
        (["--aggregate", "median"], "bad --aggregate"),
        (["--params-file", "missing.yaml"], "does not exist"),
    ],
)
def test_bad_input_exits_2_and_creates_nothing(repo: Path, args: list[str], message: str):
    base = [a for a in INIT if a not in ("--params-file", "params.json")]
    before = tree_digest(repo)
    branches = git(repo, "branch", "--list")
    proc = cli(repo, *base, *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and proc.stderr.count("\n") == 1
    assert not (repo / "reports").exists()
    assert tree_digest(repo) == before and git(repo, "branch", "--list") == branches


def test_bad_experiment_name_and_unknown_key_exit_2_before_any_branch(repo: Path):
    cli(repo, *INIT, "--max-experiments", "5", check=True)
    cli(repo, "baseline", check=True)
    branches = git(repo, "branch", "--list")
    for args in (
        ["try", "bad name", "--set", "lr=1"],
        ["try", "typo", "--set", "lrr=1"],
        ["try", "x", "--set", "novalue"],
    ):
        proc = cli(repo, *args)
        assert proc.returncode == 2, proc.stderr
    assert git(repo, "branch", "--list") == branches
    assert "closest existing keys: lr" in cli(repo, "try", "typo", "--set", "lrr=1").stderr
    assert len(ledger_rows(repo)) == 1


def test_missing_repo_is_a_clear_error(tmp_path: Path):
    proc = cli(tmp_path, "status", "--repo", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "no such folder" in proc.stderr
    proc = cli(tmp_path, "status")
    assert proc.returncode == 2 and "not inside a git repository" in proc.stderr


def test_repository_without_working_tree_is_a_clear_error(tmp_path: Path, repo: Path):
    """A bare repository and the inside of .git are repositories without a working tree: exit 2, nothing made."""
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    for where in (bare, repo / ".git"):
        proc = cli(where, "status")
        assert proc.returncode == 2 and "has no working tree" in proc.stderr, proc.stderr
    assert not (repo / "reports").exists()


def test_met_stop_condition_refuses_with_exit_3(repo: Path):
    cli(repo, *INIT, "--max-experiments", "1", check=True)
    cli(repo, "baseline", check=True)
    proc = cli(repo, "try", "more", "--set", "lr=0.2")
    assert proc.returncode == 3
    assert proc.stdout.strip() == "stop condition met: 1/1 attempted"


def test_default_prefix_and_campaign_name(repo: Path):
    init = json.loads(cli(repo, *INIT[:-2], "--json", check=True).stdout)["campaign"]
    today = time.strftime("%Y-%m-%d")
    assert init["prefix"] == f"autoresearch/{today}-train" and init["name"] == f"{today}-train"
    named = json.loads(cli(repo, *INIT[:-2], "--prefix", "autoresearch/lr-sweep", "--json", check=True).stdout)
    assert named["campaign"]["name"] == "lr-sweep"


def test_default_rule_is_baseline_plus_three(repo: Path):
    init = cli(repo, *INIT, check=True)
    assert "target_experiment_count = 4 (default: baseline plus three, then ask)" in init.stdout
    cli(repo, "baseline", check=True)
    for i, lr in enumerate(("0.02", "0.03", "0.04")):
        proc = cli(repo, "try", f"e{i}", "--set", f"lr={lr}", check=True)
    assert "stop condition met: 4/4 attempted" in proc.stdout
    assert cli(repo, "try", "e9", "--set", "lr=0.05").returncode == 3


def test_status_sentence_before_and_after_every_run(repo: Path):
    cli(repo, *INIT, "--stop", "3 experiments or 2h total, 10m each", check=True)
    out = cli(repo, "baseline", check=True).stdout.splitlines()
    sentences = [line for line in out if line.startswith("stop condition")]
    assert sentences[0].startswith("stop condition not yet met: 0/3 attempted, 1h5")
    assert sentences[1].startswith("stop condition not yet met: 1/3 attempted, 1h5")
    status = json.loads(cli(repo, "status", "--json", check=True).stdout)
    assert status["monitors"][0] == "target_experiment_count = 3"
    assert status["monitors"][2] == "per_experiment_timeout = 10m"
    assert status["remaining_experiments"] == 2 and status["latest"]["index"] == 1


def test_deadline_is_absolute_and_persisted(repo: Path):
    cli(repo, *INIT, "--budget", "1h", check=True)
    first = json.loads((repo / "reports/auto_research/project/campaign.json").read_text())["rules"]["deadline"]
    time.sleep(1.1)
    cli(repo, "baseline", check=True)
    again = json.loads((repo / "reports/auto_research/project/campaign.json").read_text())["rules"]["deadline"]
    assert first == again and abs(first - (time.time() - 1.1 + 3600)) < 30


def test_no_room_for_another_run_before_the_deadline(repo: Path):
    cli(repo, *INIT, "--budget", "10s", "--per-experiment", "9s", check=True)
    time.sleep(1.5)
    proc = cli(repo, "baseline")
    assert proc.returncode == 3
    assert re.match(r"stop condition met: \ds remaining, no room for another 9s run", proc.stdout), proc.stdout
    assert not git(repo, "branch", "--list", "autoresearch/*").strip()


def test_target_stops_the_campaign(repo: Path):
    cli(repo, *INIT, "--target", "val_score>=0.95", "--max-experiments", "10", check=True)
    cli(repo, "baseline", check=True)
    out = cli(repo, "try", "good", "--set", "lr=0.1", check=True).stdout
    assert "stop condition met: target val_score>=0.95 reached (1)" in out
    assert cli(repo, "try", "more", "--set", "lr=0.2").returncode == 3


def test_ledger_cli_prints_tsv(repo: Path):
    cli(repo, *INIT, "--max-experiments", "2", check=True)
    cli(repo, "baseline", check=True)
    out = cli(repo, "ledger", check=True).stdout
    assert out == (repo / "reports/auto_research_results.tsv").read_text()


def test_engine_leaves_no_process_and_runs_in_the_worktree(repo: Path):
    cli(repo, *INIT, "--max-experiments", "2", check=True)
    cli(repo, "baseline", check=True)
    ours = str(repo)  # processes of other repositories on this machine are not this campaign's
    leftovers = [
        p
        for p in psutil.process_iter(["cmdline", "cwd"])
        if "train.py" in " ".join(p.info["cmdline"] or []) and (p.info["cwd"] or "").startswith(ours)
    ]
    assert not leftovers
    assert not (repo / "reports/auto_research/project/worktrees/baseline").exists()  # a clean worktree is removed
    assert sorted(os.listdir(repo / "reports/auto_research/project/baseline")) == ["curve.json", "run.log"]


def test_initialised_submodules_are_available_in_experiment_worktrees(tmp_path: Path):
    lib = make_repo(tmp_path / "lib", {"data.txt": "payload\n"})
    repo = make_repo(tmp_path / "main", {"check.py": 'print("score:", len(open("3rdparty/lib/data.txt").read()))\n'})
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "3rdparty/lib")
    git(repo, "commit", "-qm", "add the submodule")
    cli(
        repo,
        "init",
        "--command",
        f"{PY} check.py",
        "--metric",
        "score",
        "--maximize",
        "--max-experiments",
        "1",
        check=True,
    )
    cli(repo, "baseline", check=True)
    row = ledger_rows(repo)[0]
    assert row["status"] == "keep" and row["metric_value"] == 8
    assert not list((repo / "reports").rglob("worktrees/*"))  # the worktree and its submodule clone are released
    assert git(repo, "submodule", "status").startswith(" ")  # the person's own submodule untouched


def test_a_seed_flag_without_dashes_is_taken_as_set_takes_keys(tmp_path: Path):
    script = (
        'import argparse; p = argparse.ArgumentParser(); p.add_argument("--seed", type=int, default=0); '
        'print(f"acc: {0.5 + p.parse_args().seed / 1e5}")\n'
    )
    repo = make_repo(tmp_path / "s", {"t.py": script})
    init = cli(
        repo,
        "init",
        "--command",
        f"{PY} t.py",
        "--metric",
        "acc",
        "--maximize",
        "--seed-flag",
        "seed",
        "--baseline-repeats",
        "2",
        "--per-experiment",
        "90s",
        check=True,
    )
    assert "per_experiment_timeout = 1m30s" in init.stdout
    cli(repo, "baseline", check=True)
    rows = ledger_rows(repo)
    assert [r["status"] for r in rows] == ["keep", "keep"] and rows[1]["command"].endswith("t.py --seed 1001")
    bad = cli(
        repo,
        "init",
        "--command",
        f"{PY} t.py",
        "--metric",
        "acc",
        "--maximize",
        "--seed-flag",
        "--seed 3",
        "--campaign",
        "other",
    )
    assert bad.returncode == 2 and "bad --seed-flag" in bad.stderr


def test_a_crash_names_its_error_line_its_log_and_its_notes(repo: Path):
    cli(repo, *INIT, "--max-experiments", "3", check=True)
    cli(repo, "baseline", check=True)
    out = cli(repo, "try", "typo", "--set", "lr=abc", check=True).stdout
    row = ledger_rows(repo)[1]
    assert row["status"] == "crash"
    assert "exit code 1: TypeError: unsupported operand type(s) for -: 'str' and 'float'" in row["description"]
    assert row["description"].endswith(
        "; log reports/auto_research/project/typo/run.log, its tail in reports/auto_research/project/notes.md"
    )
    assert "TypeError: unsupported operand" in out and "reports/auto_research/project/notes.md" in out


def test_status_counts_rows_and_follows_the_persons_commits_until_the_baseline(repo: Path):
    cli(repo, *INIT, "--max-experiments", "5", check=True)
    before = json.loads(cli(repo, "status", "--json", check=True).stdout)
    assert before["base"]["follows_your_commits"] and before["counts"] == {"keep": 0, "discard": 0, "crash": 0}
    # a knob committed after init but before the baseline is known to the campaign
    (repo / "params.json").write_text('{"lr": 0.01, "sleep": 0, "warmup": 2}\n')
    git(repo, "commit", "-qam", "add warmup")
    moved = json.loads(cli(repo, "status", "--json", check=True).stdout)["base"]
    assert moved == {"commit": git(repo, "rev-parse", "HEAD").strip(), "commits_past": 0, "follows_your_commits": True}
    out = cli(repo, "baseline", check=True).stdout
    assert "your branch moved since init: the campaign now starts from your current commit" in out
    cli(repo, "try", "warm", "--set", "warmup=4", check=True)
    cli(repo, "try", "broken", "--set", "lr=abc", check=True)
    # afterwards the base stays, and status says how to build on newer commits
    git(repo, "commit", "-q", "--allow-empty", "-m", "more work")
    data = json.loads(cli(repo, "status", "--json", check=True).stdout)
    assert data["counts"] == {"keep": 1, "discard": 1, "crash": 1} and data["gpu_hours"]["used"] == 0.0  # CPU-only runs
    assert data["base"] == {
        "commit": git(repo, "rev-parse", "main~1").strip(),
        "commits_past": 1,
        "follows_your_commits": False,
    }
    text = cli(repo, "status", check=True).stdout
    assert "  rows: 3 attempted: 1 keep, 1 discard, 1 crash" in text
    assert "your branch main is 1 commit(s) past it" in text and "'autoresearch try NAME --parent main'" in text
    plan = cli(repo, "run", "--yes", "--proposer", "random", "--continue", "1", check=True).stdout
    assert "  rows so far: 3 attempted: 1 keep, 1 discard, 1 crash" in plan


def test_init_names_the_recipe_as_the_ledger_does_and_run_help_lists_every_proposer(repo: Path):
    out = cli(repo, *INIT, "--max-experiments", "2", check=True).stdout
    assert "  recipe: params.json\n" in out and f"  command: {PY} train.py\n" in out
    cli(repo, "baseline", check=True)
    assert ledger_rows(repo)[0]["recipe"] == "params.json"
    helped = " ".join(cli(repo, "run", "--help", check=True).stdout.split())
    for proposer in ("queue:FILE", "catalog", "search:SPACE.yaml", "agent:", "llm[:MODEL]", "random"):
        assert proposer in helped
