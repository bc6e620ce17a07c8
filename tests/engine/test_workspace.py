"""The campaign's git side on real repositories: branches and worktrees made without touching the person's
working tree, index or branch; only a hypothesis's own files committed; a patch refused before anything exists."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.names import validate_name
from nrl_autoresearch.runner.workspace import (
    BASELINE_SUBJECT,
    Workspace,
    check_prefix_free,
    validate_prefix,
)
from tests.helpers import git, make_repo, tree_digest

PREFIX = "autoresearch/2026-01-01-lr"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A person's repository, mid-work: a staged file, an untracked one, another branch checked out."""
    path = make_repo(tmp_path / "repo", {"train.py": "print('val_score: 0.5')\n", "params.json": '{"lr": 0.1}\n'})
    git(path, "checkout", "-q", "-b", "my-feature")
    (path / "staged.txt").write_text("staged\n")
    git(path, "add", "staged.txt")
    (path / "scratch.py").write_text("untracked\n")
    return path


def workspace(repo: Path) -> Workspace:
    return Workspace(repo, PREFIX, repo / "reports/auto_research/wt")


def test_baseline_branch_and_experiment_worktree_leave_the_person_alone(repo: Path):
    before = tree_digest(repo)
    ws = workspace(repo)
    ws.ensure_excluded(["reports/"])
    start = git(repo, "rev-parse", "HEAD").strip()
    base = ws.ensure_baseline(start)
    assert ws.ensure_baseline(start) == base  # made once
    assert ws.is_baseline_record(f"{PREFIX}/baseline", start)
    assert git(repo, "log", "-1", "--format=%P|%s", base).strip() == f"{start}|{BASELINE_SUBJECT}"
    tree = ws.create("lr-up", base)
    assert ws.create("lr-up", base) == tree and ws.worktree_of(f"{PREFIX}/lr-up") == tree
    assert (tree / "params.json").read_text() == '{"lr": 0.1}\n' and not (tree / "staged.txt").exists()
    assert set(ws.branches()) == {f"{PREFIX}/baseline", f"{PREFIX}/lr-up"}
    assert ws.user_branch() == "my-feature" and ws.user_state().dirty == ["A  staged.txt", "?? scratch.py"]
    assert tree_digest(repo) == before


def test_only_the_hypothesis_files_are_committed_never_run_outputs(repo: Path):
    ws = workspace(repo)
    base = ws.ensure_baseline(git(repo, "rev-parse", "HEAD").strip())
    tree = ws.create("lr-up", base)
    (tree / "params.json").write_text('{"lr": 0.2}\n')
    (tree / "run.log").write_text("epoch 1\n")
    (tree / "events.out.tfevents.1.host").write_bytes(b"\0")
    (tree / "big.dat").write_bytes(b"\0" * (2 << 20))
    (tree / "notes.md").write_text("why\n")
    changed = ws.changed_paths(tree)
    assert sorted(changed) == ["notes.md", "params.json"]
    commit = ws.commit(tree, changed, "lr-up: double the learning rate\n")
    assert git(tree, "show", "--name-only", "--format=%s", commit).split() == [
        "lr-up:",
        "double",
        "the",
        "learning",
        "rate",
        "notes.md",
        "params.json",
    ]
    assert "Signed-off-by: Researcher <researcher@example.org>" in git(tree, "log", "-1", "--format=%B", commit)
    assert ws.diff_size(base, commit) == 3 and ws.net_lines(base, commit) == 1
    assert ws.resolve_parent("lr-up") == commit and ws.resolve_parent("baseline") == base
    with pytest.raises(UsageError, match="unknown parent 'nope'"):
        ws.resolve_parent("nope")


def test_a_worktree_with_leftovers_is_kept_and_a_clean_one_removed(repo: Path):
    ws = workspace(repo)
    base = ws.ensure_baseline(git(repo, "rev-parse", "HEAD").strip())
    clean, dirty = ws.create("clean", base), ws.create("dirty", base)
    (dirty / "params.json").write_text('{"lr": 9}\n')
    assert ws.release(clean) and not clean.exists()
    assert not ws.release(dirty) and (dirty / "params.json").exists()  # an uncommitted change is never lost
    assert ws.release(dirty, discard=True) and not dirty.exists()
    assert set(ws.branches()) == {f"{PREFIX}/baseline", f"{PREFIX}/clean", f"{PREFIX}/dirty"}  # branches stay


def test_a_worktree_deleted_by_hand_is_made_again(repo: Path):
    ws = workspace(repo)
    base = ws.ensure_baseline(git(repo, "rev-parse", "HEAD").strip())
    tree = ws.create("gone", base)
    shutil.rmtree(tree)
    again = ws.create("gone", base)
    assert again == tree and (again / "train.py").exists()


def test_a_patch_that_does_not_apply_is_refused_before_anything_exists(repo: Path, tmp_path: Path):
    ws = workspace(repo)
    start = git(repo, "rev-parse", "HEAD").strip()
    bad = tmp_path / "bad.patch"
    bad.write_text('--- a/params.json\n+++ b/params.json\n@@ -1 +1 @@\n-{"lr": 0.7}\n+{"lr": 0.2}\n')
    index = (repo / ".git/index").read_bytes()
    with pytest.raises(UsageError, match=r"patch .*bad.patch' does not apply to the parent commit"):
        ws.check_patch(start, bad)
    assert (repo / ".git/index").read_bytes() == index and ws.branches() == {}
    good = tmp_path / "good.patch"
    good.write_text('--- a/params.json\n+++ b/params.json\n@@ -1 +1 @@\n-{"lr": 0.1}\n+{"lr": 0.2}\n')
    ws.check_patch(start, good)
    tree = ws.create("patched", ws.ensure_baseline(start))
    assert ws.apply_patch(tree, good) == ["params.json"] and (tree / "params.json").read_text() == '{"lr": 0.2}\n'


def test_a_refusing_commit_hook_is_named_with_its_fix(repo: Path):
    hook = repo / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\necho no >&2\nexit 1\n")
    hook.chmod(0o755)
    ws = workspace(repo)
    refusal = ws.probe_commit()
    assert refusal is not None and "the pre-commit hook in" in refusal and "core.hooksPath" in refusal
    hook.unlink()
    assert ws.probe_commit() is None
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1  # the probe left nothing


def test_names_become_one_ref_part_and_the_prefix_must_be_free(repo: Path):
    assert validate_name("lr-up.2") == "lr-up.2"
    for bad in ("baseline", "-x", "a..b", "x.lock", "a/b", "x" * 101):
        with pytest.raises(UsageError, match="bad experiment name"):
            validate_name(bad)
    ws = workspace(repo)
    assert validate_prefix(ws.git, PREFIX) == PREFIX
    with pytest.raises(UsageError, match="bad --prefix"):
        validate_prefix(ws.git, "bad prefix/")
    with pytest.raises(UsageError, match="the branch 'my-feature' is in the way"):
        check_prefix_free(ws.git, "my-feature/x")
    ws.ensure_baseline(git(repo, "rev-parse", "HEAD").strip())
    with pytest.raises(UsageError, match=f"'{PREFIX}/baseline' is in the way"):
        check_prefix_free(ws.git, PREFIX)
    assert ws.reserve_name("baseline", set()) == "baseline-2" and ws.reserve_name("new", {"new"}) == "new-2"


def test_our_files_are_excluded_in_git_info_not_in_the_persons_gitignore(repo: Path):
    ws = workspace(repo)
    ws.ensure_excluded(["reports/", "session/"])
    ws.ensure_excluded(["reports/", "session/"])
    exclude = (repo / ".git/info/exclude").read_text().splitlines()
    assert exclude.count("reports/") == 1 and exclude.count("session/") == 1
    assert not (repo / ".gitignore").exists()


def test_hand_edits_are_found_in_a_worktree_made_for_them_and_in_one_reused_never_in_one_just_made(repo: Path):
    ws = workspace(repo)
    base = ws.ensure_baseline(git(repo, "rev-parse", "HEAD").strip())
    mine = ws.create("by-hand", base, for_hand_edits=True)  # `autoresearch new`
    (mine / "params.json").write_text('{"lr": 0.3}\n')
    assert ws.hand_edits(mine) == ["params.json"]
    fresh = ws.create("engine-made", base)
    assert ws.hand_edits(fresh) == []
    (fresh / "params.json").write_text('{"lr": 0.4}\n')  # edited after its first look: git is asked again
    assert ws.hand_edits(fresh) == ["params.json"]
    assert ws.create("by-hand", base) == mine and ws.hand_edits(mine) == ["params.json"]  # reused, not made
    assert workspace(repo).hand_edits(fresh) == ["params.json"]  # another process made it
    again = ws.create("rerun", base)  # made, then released unused (a rerun of a commit)...
    assert ws.release(again)
    ws.create("rerun", base, for_hand_edits=True)  # ...and made again for the person's edits
    (again / "params.json").write_text('{"lr": 0.5}\n')
    assert ws.hand_edits(again) == ["params.json"]


def test_an_empty_marker_commit_takes_nothing_a_killed_engine_left_staged(repo: Path):
    ws = workspace(repo)
    base = ws.ensure_baseline(git(repo, "rev-parse", "HEAD").strip())
    tree = ws.create("killed", base)
    (tree / "params.json").write_text('{"lr": 0.2}\n')
    git(tree, "add", "params.json")  # the engine was killed here, between `git add` and `git commit`
    marker = ws.commit(tree, [], "killed: interrupted before its change was committed\n", allow_empty=True)
    assert git(repo, "rev-parse", f"{marker}^{{tree}}") == git(repo, "rev-parse", f"{base}^{{tree}}")
    assert ws.commit(tree, ["params.json"], "killed: lr 0.2\n") != marker  # the rerun commits the change itself
