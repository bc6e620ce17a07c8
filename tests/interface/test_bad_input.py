"""Bad input: exit 2, one line naming what was wrong, and nothing created (no branch, campaign folder, ledger,
worktree or exclude line), for init, for the commands of a running campaign and for click's own parse errors."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from nrl_autoresearch.core.stoprules import StopRules
from tests.helpers import PY, cli, git, ledger_rows, score_repo, tree_digest

INIT = ("init", "--command", f"{PY} train.py", "--metric", "val_score", "--maximize", "--params-file", "params.json")
LONG = "a" * 300


def _state(repo: Path) -> dict:
    """Everything bad input must leave as it was: refs, worktrees, the person's files, our files and folders."""
    ours = [
        p.relative_to(repo).as_posix()
        for d in ("reports", "session")
        for p in sorted((repo / d).rglob("*"))
        if p.name != "writer.lock"
    ]  # the campaign's lock file: it exists whether the lock is held or not
    ledger = repo / "reports/auto_research_results.tsv"
    exclude = repo / ".git/info/exclude"
    return {
        "refs": git(repo, "for-each-ref"),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
        "tree": tree_digest(repo),
        "ours": ours,
        "ledger": ledger.read_text() if ledger.exists() else None,
        "exclude": exclude.read_text() if exclude.exists() else None,
    }


def _refused(repo: Path, *args: str, says: str, env: dict | None = None) -> None:
    """`autoresearch ARGS` exits 2 with one line containing `says`, and creates nothing."""
    before = _state(repo)
    proc = cli(repo, *args, env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("autoresearch: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert says in proc.stderr, proc.stderr
    assert _state(repo) == before


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A training project with a user branch named like a campaign's baseline, an uncommitted and an unreadable
    params file, and a params file outside it."""
    repo = score_repo(tmp_path_factory.mktemp("bad") / "project")
    (repo / "broken.json").write_text('{"lr": 0.01,\n')
    git(repo, "add", "broken.json")
    git(repo, "commit", "-qm", "a broken params file")
    git(repo, "branch", "mine/exp/baseline")
    (repo / "untracked.json").write_text('{"lr": 0.01}\n')
    (repo.parent / "outside.json").write_text('{"lr": 0.01}\n')
    return repo


@pytest.mark.parametrize(
    "args, says",
    [
        (("--campaign", LONG), "bad campaign name"),
        (("--prefix", LONG), "bad --prefix"),
        (("--prefix", f"research/{LONG}"), "bad --prefix"),
        (("--prefix", "main"), "the branch 'main' is in the way"),
        (("--prefix", "main/lr"), "the branch 'main' is in the way"),
        (("--prefix", "mine/exp"), "the branch 'mine/exp/baseline' is in the way"),
        (("--target", "loss<=0.1"), "it names 'loss' but the objective is 'val_score'"),
        (("--budget", "99999999999999999999d"), "bad --budget"),
        (("--budget", " "), "bad --budget"),
        (("--budget", "\n"), "bad --budget"),
        (("--budget", ""), "bad --budget"),
        (("--per-experiment", "1:99:99"), "bad --per-experiment"),
        (("--stop", "1h total, 2h each"), "no run could ever start"),
        (("--budget", "1h", "--per-experiment", "1h"), "no run could ever start"),
        (("--command", f'{PY} "train.py'), "bad --command"),
        (("--params-file", "../outside.json"), "outside the repository"),
        (("--params-file", "untracked.json"), "is not committed"),
        (("--params-file", "broken.json"), "cannot parse 'broken.json'"),
        (("--metric-source", "tensorboard:"), "bad --metric-source 'tensorboard:'"),
        (("--z", "nan"), "bad --z"),
        (("--min-delta", "nan"), "bad --min-delta"),
        (("--min-delta", "-0.5"), "bad --min-delta"),
        (("--bogus",), "No such option '--bogus'"),
        (("--max-experiments", "many"), "'--max-experiments'"),
    ],
)
def test_bad_init_exits_2_with_one_line_and_creates_nothing(project: Path, args: tuple[str, ...], says: str):
    _refused(project, *INIT, *args, says=says)


def test_params_file_given_by_absolute_path_outside_the_repository(project: Path):
    _refused(project, *INIT, "--params-file", str(project.parent / "outside.json"), says="outside the repository")


def test_slurm_launcher_without_slurm_commands(project: Path, tmp_path: Path):
    found = shutil.which("git")
    assert found is not None, "git is on PATH"
    (tmp_path / "git").symlink_to(found)  # a PATH with git and nothing of Slurm's
    _refused(project, *INIT, "--launcher", "slurm", env={"PATH": str(tmp_path)}, says="needs sbatch")


def test_tracked_ledger_is_refused(tmp_path: Path):
    repo = score_repo(tmp_path / "p")
    (repo / "reports").mkdir()
    (repo / "reports/auto_research_results.tsv").write_text("kept by hand\n")
    git(repo, "add", "reports")
    git(repo, "commit", "-qm", "a tracked results file")
    _refused(repo, *INIT, says="reports/auto_research_results.tsv is tracked by git")


def test_bare_repository_is_refused(tmp_path: Path):
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))

    def files() -> dict[str, str]:
        return {
            p.relative_to(bare).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(bare.rglob("*"))
            if p.is_file()
        }

    before = files()
    proc = cli(bare, *INIT)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "bare repository" in proc.stderr, proc.stderr
    assert files() == before


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A campaign with its baseline recorded, and a patch that does not apply to it."""
    repo = score_repo(tmp_path_factory.mktemp("bad") / "campaign")
    cli(repo, *INIT, "--campaign", "c", "--max-experiments", "50", check=True)
    cli(repo, "baseline", check=True)
    (repo.parent / "stale.diff").write_text(
        "--- a/train.py\n+++ b/train.py\n@@ -1,2 +1,2 @@\n-import os\n+import sys\n print('not here')\n"
    )
    return repo


@pytest.mark.parametrize(
    "args, says",
    [
        (("try", "p", "--patch", "../stale.diff"), "does not apply to the parent commit"),
        (("try", LONG, "--set", "lr=0.2"), "bad experiment name"),
        (("new", LONG), "bad experiment name"),
        (("try", "baseline", "--set", "lr=0.2"), "it is the campaign's reference"),
        (("new", "baseline"), "it is the campaign's reference"),
        (("try", "x", "--set", "lr="), "bad --set 'lr='"),
        (("steer", ""), "the steering text is empty"),
        (("steer", "  "), "the steering text is empty"),
        (("try", "x", "--repeats", "two"), "'--repeats'"),
        (("try",), "Missing argument 'NAME'"),
        (("run", "--workers", "many"), "'--workers'"),
        (("status", "--bogus"), "No such option '--bogus'"),
        (("ledger", "rebuild", "--bogus"), "No such option '--bogus'"),
        (("--bogus",), "No such option '--bogus'"),
        (("nonsense",), "No such command 'nonsense'"),
    ],
)
def test_bad_input_to_a_campaign_exits_2_with_one_line_and_creates_nothing(
    campaign: Path, args: tuple[str, ...], says: str
):
    _refused(campaign, *args, says=says)


@pytest.mark.parametrize(
    "queue, says",
    [
        ("- name: a\n  set: {lr: 0.2\n", "is not valid YAML/JSON at line"),
        ("- just a string\n", "entry 1 of"),
        ("- name: a\n  set: {lr: 0.2}\n- name: b\n  sets: {lr: 0.3}\n", "entry 2 (b)"),
        ("- name: a\n  set: {lr: 0.2}\n- name: a\n  set: {lr: 0.3}\n", "used twice"),
        ("- name: baseline\n  set: {lr: 0.2}\n", "entry 1 (baseline)"),
        ("- name: a\n  patch: stale.diff\n", "does not apply to the parent commit"),
    ],
)
def test_broken_queue_file_names_the_entry(campaign: Path, queue: str, says: str):
    path = campaign.parent / "queue.yaml"
    path.write_text(queue)
    _refused(campaign, "run", "--yes", "--proposer", f"queue:{path}", says=says)


def test_continue_never_lowers_the_count_rule(tmp_path: Path):
    repo = score_repo(tmp_path / "p")
    cli(repo, *INIT, "--campaign", "c", "--max-experiments", "50", check=True)
    queue = tmp_path / "queue.yaml"
    queue.write_text("- name: up\n  set: {lr: 0.02}\n")
    cli(repo, "run", "--yes", "--continue", "1", "--proposer", f"queue:{queue}", check=True)
    saved = json.loads((repo / "reports/auto_research/c/campaign.json").read_text())
    assert saved["rules"]["max_experiments"] == 50 and len(ledger_rows(repo)) == 2
    assert "2/50 attempted" in cli(repo, "status", check=True).stdout


def test_extending_keeps_the_larger_count_and_adds_none_where_there_was_none():
    assert StopRules.build(now=0, max_experiments=50).extended(attempted=2, more=2).max_experiments == 50
    assert StopRules.build(now=0, max_experiments=4).extended(attempted=4, more=3).max_experiments == 7
    assert StopRules.build(now=0, budget="1h").extended(attempted=9, more=1).max_experiments is None


def test_a_hand_made_baseline_branch_is_never_run_as_the_reference(tmp_path: Path):
    repo = score_repo(tmp_path / "p")
    cli(repo, *INIT, "--prefix", "research/lr", check=True)
    git(repo, "branch", "research/lr/baseline")
    says = "research/lr/baseline exists but is not the record of the starting point"
    _refused(repo, "baseline", says=says)
    before = _state(repo)
    proc = cli(repo, "run", "--yes")
    assert proc.returncode == 2 and says in proc.stderr, proc.stderr
    assert [_state(repo)[k] for k in ("refs", "worktrees", "tree", "ledger")] == [
        before[k] for k in ("refs", "worktrees", "tree", "ledger")
    ]
