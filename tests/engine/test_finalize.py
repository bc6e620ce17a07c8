"""finalize: the winning keeps as clean commits on a new branch from the person's, with PR.md; real git,
the person's tree, index and branch compared byte for byte before and after."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import PY, cli, git, make_repo, score_repo, tree_digest

# reads `--lr X` from its command line: a campaign whose changes are flags, recorded in .autoresearch/
FLAGGED = """\
import sys
lr = float(sys.argv[sys.argv.index("--lr") + 1]) if "--lr" in sys.argv else 0.01
print(f"val_score: {1.0 - abs(lr - 0.1):.4f}")
"""


def campaign(repo: Path, *init: str) -> Path:
    cli(
        repo,
        "init",
        "--command",
        f"{PY} train.py",
        "--metric",
        "val_score",
        "--maximize",
        "--campaign",
        "c",
        "--max-experiments",
        "9",
        *init,
        check=True,
    )
    cli(repo, "baseline", check=True)
    return repo


def params_campaign(tmp_path: Path) -> Path:
    """Baseline, lr2 (a keep), lr3 built on lr2 (the best keep), and a discard."""
    repo = campaign(score_repo(tmp_path / "r"), "--params-file", "params.json")
    cli(repo, "try", "lr2", "--set", "lr=0.05", check=True)
    cli(repo, "try", "lr3", "--set", "lr=0.1", "--parent", "best", check=True)
    cli(repo, "try", "worse", "--set", "lr=0.5", check=True)
    return repo


def prefix_of(repo: Path) -> str:
    return json.loads((repo / "reports/auto_research/c/campaign.json").read_text())["prefix"]


def final_files(repo: Path, branch: str) -> dict[str, str]:
    return {p: git(repo, "show", f"{branch}:{p}") for p in git(repo, "ls-tree", "-r", "--name-only", branch).split()}


def test_best_keep_and_its_lineage_become_clean_commits_with_the_evidence(tmp_path: Path):
    repo = params_campaign(tmp_path)
    (repo / "train.py").write_text((repo / "train.py").read_text() + "# my local edit\n")
    (repo / "notes.txt").write_text("staged\n")
    git(repo, "add", "notes.txt")
    before = tree_digest(repo)
    done = cli(repo, "finalize", check=True)
    assert tree_digest(repo) == before
    branch = prefix_of(repo) + "-final"
    subjects = git(repo, "log", "--format=%s", f"main..{branch}").splitlines()
    assert subjects == ["lr3: lr=0.1", "lr2: lr=0.05"]
    assert git(repo, "rev-parse", f"{branch}~2") == git(repo, "rev-parse", "main")
    for rev in (branch, f"{branch}~1"):
        assert git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", rev).split() == ["params.json"]
        assert "autoresearch: campaign" not in git(repo, "log", "-1", "--format=%B", rev)
    assert json.loads(final_files(repo, branch)["params.json"])["lr"] == 0.1
    pr = Path(done.stdout.split("PR description: ", 1)[1].strip())
    text = pr.read_text()
    assert "| 3 | lr3 |" in text and "| 2 | lr2 |" in text and "worse" not in text
    assert "+0.09" in text and "Run-to-run noise: unknown" in text and f"{PY} train.py" in text
    assert git(repo, "status", "--porcelain", "--", str(pr)) == ""  # untracked and ignored: the tree stays clean


def test_from_branch_carries_its_own_lineage_only(tmp_path: Path):
    repo = params_campaign(tmp_path)
    cli(repo, "finalize", "--from", "lr2", "--branch", "only-lr2", check=True)
    assert git(repo, "log", "--format=%s", "main..only-lr2").splitlines() == ["lr2: lr=0.05"]
    assert json.loads(final_files(repo, "only-lr2")["params.json"])["lr"] == 0.05


def test_bookkeeping_files_stay_out_and_the_command_carries_the_flags(tmp_path: Path):
    repo = campaign(make_repo(tmp_path / "r", {"train.py": FLAGGED}), "--set-style", "flags")
    cli(repo, "try", "lr", "--set", "lr=0.1", check=True)
    done = cli(repo, "finalize", "--branch", "final", check=True)
    assert "no file change" in done.stdout
    assert git(repo, "rev-parse", "final") == git(repo, "rev-parse", "main")
    assert ".autoresearch/flags.json" not in final_files(repo, "final")
    pr = Path(done.stdout.split("PR description: ", 1)[1].strip()).read_text()
    assert "train.py --lr 0.1" in pr


def test_a_conflict_is_reported_and_nothing_is_created(tmp_path: Path):
    repo = params_campaign(tmp_path)
    (repo / "params.json").write_text(json.dumps({"lr": 0.2, "sleep": 0}) + "\n")
    git(repo, "commit", "-qam", "my own lr")
    before, refs = tree_digest(repo), git(repo, "for-each-ref")
    proc = cli(repo, "finalize", "--branch", "final")
    assert proc.returncode == 1, proc.stderr
    assert "lr2 does not apply cleanly" in proc.stderr and "conflict: params.json" in proc.stderr
    assert tree_digest(repo) == before and git(repo, "for-each-ref") == refs
    assert not (repo / "reports/auto_research/c/finalize").exists()


def test_bad_input_is_refused_with_exit_2_and_nothing_created(tmp_path: Path):
    repo = params_campaign(tmp_path)
    git(repo, "branch", "taken")
    refs = git(repo, "for-each-ref")
    prefix = prefix_of(repo)
    for args, said in [
        (["--from", "worse"], "not a kept experiment"),
        (["--from", "nope"], "keeps: lr2, lr3"),
        (["--branch", "taken"], "already exists"),
        (["--branch", "bad..name"], "not a valid branch"),
        (["--branch", f"{prefix}/x"], "under the campaign's prefix"),
    ]:
        proc = cli(repo, "finalize", *args)
        assert proc.returncode == 2 and said in proc.stderr and len(proc.stderr.splitlines()) == 1, (args, proc.stderr)
    assert git(repo, "for-each-ref") == refs
    assert not (repo / "reports/auto_research/c/finalize").exists()
    empty = campaign(score_repo(tmp_path / "e"))
    proc = cli(empty, "finalize")
    assert proc.returncode == 2 and "nothing to finalize" in proc.stderr
