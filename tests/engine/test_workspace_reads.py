"""What the workspace remembers between git calls stays true: the person's branch, files at commits, diff sizes."""

from __future__ import annotations

from pathlib import Path

from nrl_autoresearch.core.git import Git, Snapshot
from nrl_autoresearch.runner.workspace import Workspace
from tests.helpers import git, make_repo


def commit(repo: Path, text: str) -> str:
    (repo / "a.txt").write_text(text)
    git(repo, "commit", "-qam", text.strip() or "empty")
    return git(repo, "rev-parse", "HEAD").strip()


def test_the_persons_branch_is_seen_after_every_switch(tmp_path: Path):
    repo = make_repo(tmp_path / "r", {"a.txt": "a\n"})
    ws = Workspace(repo, "autoresearch/x", tmp_path / "wt")
    assert ws.user_branch() == "main" and ws.user_branch() == "main"
    git(repo, "switch", "-q", "-c", "other")
    assert ws.user_branch() == "other"
    git(repo, "checkout", "-q", "--detach")
    assert ws.user_branch() is None
    git(repo, "switch", "-q", "main")
    assert ws.user_branch() == "main"


def test_files_at_a_commit_id_are_remembered_and_at_a_branch_read_again(tmp_path: Path):
    repo = make_repo(tmp_path / "r", {"a.txt": "one\n"})
    first = git(repo, "rev-parse", "HEAD").strip()
    g = Git(repo)
    assert Snapshot(g, first).read_text("a.txt") == "one\n" and Snapshot(g, "main").read_text("a.txt") == "one\n"
    commit(repo, "two\n")
    assert Snapshot(g, "main").read_text("a.txt") == "two\n"  # a branch moves: never remembered
    assert Snapshot(g, first).read_text("a.txt") == "one\n" and Snapshot(g, first).read_text("b.txt") is None


def test_diff_sizes_between_commits(tmp_path: Path):
    repo = make_repo(tmp_path / "r", {"a.txt": "1\n2\n3\n"})
    ws = Workspace(repo, "autoresearch/x", tmp_path / "wt")
    base = git(repo, "rev-parse", "HEAD").strip()
    shorter = commit(repo, "1\n")
    assert (ws.diff_size(base, shorter), ws.net_lines(base, shorter)) == (2, -2)
    assert (ws.diff_size(base, shorter), ws.net_lines(shorter, base)) == (2, 2)
    assert ws.diff_size(base, base) == 0 and ws.net_lines("HEAD", "HEAD") == 0
    assert ws.diff_size(base, "main") == 2
    commit(repo, "x\n")
    assert ws.diff_size(base, "main") == 4  # a branch is asked again
