"""A thin runner for git commands: argument lists, captured output, errors that say which command failed."""

from __future__ import annotations

import io
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from nrl_autoresearch.core.errors import UsageError

if TYPE_CHECKING:
    from tarfile import TarFile

NOTES_REF = "refs/notes/autoresearch"
_FALLBACK_IDENTITY = ("autoresearch", "autoresearch@localhost")
COMMIT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # a full object id: what it names never changes
_FILES_AT_MAX = 256


class GitError(RuntimeError):
    """A git command failed; carries its stderr."""


class Git:
    """git -C <path> ...; the identity falls back to autoresearch's own when the repository has none."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._identity: list[str] | None = None
        self.files_at: dict[tuple[str, str], str | None] = {}  # (commit id, path) -> text, see Snapshot

    def run(self, *args: str, input: str | None = None, check: bool = True, env: dict | None = None) -> str:
        full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", **(env or {})}
        proc = subprocess.run(
            ["git", "-C", str(self.path), *args],
            input=input,
            capture_output=True,
            text=True,
            env=full_env,
        )
        if check and proc.returncode != 0:
            said = proc.stderr.strip() or proc.stdout.strip() or f"exit status {proc.returncode}, no output"
            raise GitError(f"git {' '.join(args)} failed in {self.path}: {said}")
        return proc.stdout

    def ok(self, *args: str, input: str | None = None) -> bool:
        """True when the command succeeds (for questions such as 'does this ref exist?', or a write that may be
        refused, tried before another way)."""
        return (
            subprocess.run(
                ["git", "-C", str(self.path), *args],
                input=input,
                capture_output=True,
                text=True,
                env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
            ).returncode
            == 0
        )

    def identity_args(self) -> list[str]:
        """`-c user.name=... -c user.email=...` only when the repository does not configure an identity."""
        if self._identity is None:
            has = self.ok("config", "user.email") and self.ok("config", "user.name")
            name, email = _FALLBACK_IDENTITY
            self._identity = [] if has else ["-c", f"user.name={name}", "-c", f"user.email={email}"]
        return self._identity

    def line_changes(self, a: str, b: str, *, check: bool = True) -> tuple[int, int]:
        """Lines added and removed from commit `a` to `b`, by `git diff --numstat` (binary files count none)."""
        added = removed = 0
        for line in self.run("diff", "--numstat", a, b, check=check).splitlines():
            plus, minus, _ = line.split("\t", 2)
            if plus.isdigit() and minus.isdigit():
                added, removed = added + int(plus), removed + int(minus)
        return added, removed

    def rev(self, ref: str) -> str | None:
        """The commit a ref points at, or None."""
        out = self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False).strip()
        return out or None


def repo_root(start: Path) -> Path:
    """The main working tree of the repository holding `start` (also from inside one of its worktrees)."""
    start = Path(start)
    if not start.exists():
        raise UsageError(f"no such folder {str(start)!r}: pass --repo with the path of a git repository")
    # one git process answers all three: inside a repository? with a working tree? which one is the main tree?
    out = (
        Git(start)
        .run(
            "rev-parse",
            "--is-inside-work-tree",
            "--path-format=absolute",
            "--git-common-dir",
            "--show-toplevel",
            check=False,
        )
        .splitlines()
    )
    if not out:
        raise UsageError(f"{str(start)!r} is not inside a git repository: run 'git init' there or pass --repo DIR")
    if out[0] != "true" or len(out) < 3:
        raise UsageError(
            f"{str(start)!r} has no working tree (a bare repository, or inside .git): "
            "run autoresearch in a clone or checkout of it (git clone, git worktree add)"
        )
    common = Path(out[1])
    return common.parent if common.name == ".git" else Path(out[2])


class Snapshot:
    """The files of one commit, read without a checkout: changes are validated against the parent they will
    apply to, never against the person's (possibly dirty) working tree."""

    def __init__(self, git: Git, commit: str):
        self.git = git
        self.commit = commit

    def read_text(self, path: str) -> str | None:
        """The file's text at the commit, or None; read once per commit id (a commit never changes)."""
        key = (self.commit, path)
        if key in self.git.files_at:
            return self.git.files_at[key]
        out = subprocess.run(
            ["git", "-C", str(self.git.path), "show", f"{self.commit}:{path}"], capture_output=True, text=True
        )
        text = out.stdout if out.returncode == 0 else None
        if COMMIT_ID.fullmatch(self.commit):
            if len(self.git.files_at) >= _FILES_AT_MAX:
                self.git.files_at.clear()
            self.git.files_at[key] = text
        return text

    @contextmanager
    def export(self, *paths: str) -> Iterator[Path]:
        """A temporary folder holding `paths` (files or folders) as they are in the commit."""
        with tempfile.TemporaryDirectory(prefix="autoresearch-snapshot-") as tmp:
            archive = subprocess.run(
                ["git", "-C", str(self.git.path), "archive", "--format=tar", self.commit, "--", *paths],
                capture_output=True,
            )
            if archive.returncode == 0:
                import tarfile

                with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
                    _extract(tar, tmp)
            yield Path(tmp)


def _extract(tar: TarFile, dest: str) -> None:
    try:
        tar.extractall(dest, filter="data")
    except TypeError:  # Python before 3.10.12 has no extraction filters; the archive is our own commit
        tar.extractall(dest)
