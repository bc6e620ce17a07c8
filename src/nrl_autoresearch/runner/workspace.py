"""Git as the research journal: the prefix, branch names, the baseline, one worktree per experiment.

The user's working tree, index and checked-out branch are never touched: branches are created with
`git branch`/`update-ref`, experiments are edited and committed in their own worktrees, and only the files a
hypothesis changed are staged. No stash, reset, forced checkout or branch deletion, ever.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.git import COMMIT_ID, Git, GitError
from nrl_autoresearch.core.names import BASELINE, MAX_NAME, slugify
from nrl_autoresearch.core.oslock import FileLock

BASELINE_SUBJECT = "baseline: record starting point"
# run outputs that must never be swept into a hypothesis commit
_GENERATED = re.compile(
    r"(\.log|\.pt|\.pth|\.ckpt|\.safetensors|\.npz|\.bin|\.pyc)$|(^|/)events\.out\.tfevents\.|(^|/)__pycache__/"
)
_MAX_UNTRACKED_BYTES = 1 << 20
MAX_PREFIX = 200


@dataclass(frozen=True)
class UserState:
    """What the person has checked out, and the uncommitted files we leave alone."""

    branch: str | None
    head: str | None
    dirty: list[str]


def default_prefix(slug: str, today: date | None = None) -> str:
    return f"autoresearch/{(today or date.today()).isoformat()}-{slugify(slug, limit=40)}"


def validate_prefix(git: Git, prefix: str) -> str:
    """A prefix the campaign's branches can live under: a valid branch name, its parts short enough for folders."""
    if prefix.endswith("/") or not git.ok("check-ref-format", f"refs/heads/{prefix}/{BASELINE}"):
        raise UsageError(
            f"bad --prefix {prefix!r}: it must be a valid git branch name such as 'autoresearch/2026-03-24-dapo'"
        )
    longest = max(prefix.split("/"), key=len)
    if len(prefix) > MAX_PREFIX or len(longest) > MAX_NAME:
        raise UsageError(
            f"bad --prefix {prefix[:20]!r}...: use at most {MAX_PREFIX} characters, "
            f"at most {MAX_NAME} between slashes (each part is a folder in .git)"
        )
    return prefix


def check_prefix_free(git: Git, prefix: str) -> None:
    """A new campaign's branches must all be its own: refuse a prefix that is a branch or lies under one (git
    cannot create `main/x` beside `main`), or that holds branches already (an earlier `<prefix>/baseline`
    would be taken as the unmodified recipe)."""
    parts = prefix.split("/")
    leading = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    clash = next((b for b in leading if git.ok("show-ref", "--verify", "--quiet", f"refs/heads/{b}")), None)
    clash = clash or git.run("for-each-ref", "--count=1", "--format=%(refname:short)", f"refs/heads/{prefix}/").strip()
    if clash:
        raise UsageError(
            f"bad --prefix {prefix!r}: the branch {clash!r} is in the way of the campaign's branches "
            f"{prefix}/...; choose another --prefix or --campaign name"
        )


class Workspace:
    """The campaign's git side: branches under one prefix, worktrees under the campaign folder."""

    def __init__(self, repo: Path, prefix: str, worktrees: Path):
        self.repo = Path(repo)
        self.git = Git(self.repo)
        self.prefix = prefix
        self.worktrees = Path(worktrees)
        self.common_dir, self._git_dir = self._git_dirs()
        self._thread_lock = threading.Lock()
        self._file_lock = FileLock(str(self.common_dir / "autoresearch.lock"))
        self._numstats: dict[tuple[str, str], tuple[int, int]] = {}
        self._user_branch: tuple[bytes | None, str | None] | None = None
        self._just_created: set[Path] = set()  # worktrees this workspace checked out and nobody has edited yet

    def _git_dirs(self) -> tuple[Path, Path]:
        """The repository's shared git folder and the main tree's own: both `.git` in the usual layout (the
        campaign's repository is always its main working tree), else as git reports them."""
        dot_git = self.repo / ".git"
        if dot_git.is_dir():
            shared = dot_git.resolve()
            return shared, shared
        common, own = self.git.run("rev-parse", "--path-format=absolute", "--git-common-dir", "--git-dir").splitlines()
        return Path(common), Path(own)

    # -- reading -----------------------------------------------------------------------------------
    def user_state(self) -> UserState:
        return UserState(self.user_branch(), self.git.rev("HEAD"), _status_paths(self.git))

    def user_branch(self) -> str | None:
        """The branch the person has checked out, read from the checkout's HEAD file (no git process; a reftable
        repository, whose HEAD file says nothing, asks git each time)."""
        try:
            seen = (self._git_dir / "HEAD").read_bytes() if not (self.common_dir / "reftable").exists() else None
        except OSError:
            seen = None
        if seen is None or self._user_branch is None or self._user_branch[0] != seen:
            self._user_branch = (seen, _branch_in_head(seen) if seen is not None else self._ask_branch())
        return self._user_branch[1]

    def _ask_branch(self) -> str | None:
        return self.git.run("branch", "--show-current", check=False).strip() or None

    def branch(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def branches(self) -> dict[str, str]:
        """Experiment branches under the prefix -> commit."""
        out = self.git.run("for-each-ref", "--format=%(refname:short) %(objectname)", f"refs/heads/{self.prefix}/")
        return dict(line.split(" ", 1) for line in out.splitlines() if line.strip())

    def commit_of(self, ref: str) -> str | None:
        """The commit a ref points at. A campaign branch is read from its loose ref file, which git keeps for a
        branch it just wrote and which wins over packed refs; otherwise (packed, reftable, any other ref) git is
        asked."""
        return self._loose_branch(ref) or self.git.rev(ref)

    def _loose_branch(self, branch: str) -> str | None:
        if not branch.startswith(f"{self.prefix}/"):
            return None
        try:
            text = (self.common_dir / "refs" / "heads" / branch).read_text().strip()
        except OSError:  # packed, or a reftable repository (no such folder)
            return None
        return text if COMMIT_ID.fullmatch(text) else None

    def _head_commit(self, worktree: Path) -> str:
        """The commit a worktree has checked out, read from git's files when its branch has a loose ref."""
        try:
            branch = _branch_in_head((_worktree_git_dir(Git(worktree)) / "HEAD").read_bytes())
        except OSError:
            branch = None
        found = self._loose_branch(branch) if branch else None
        return found or Git(worktree).run("rev-parse", "HEAD").strip()

    def resolve_parent(self, parent: str) -> str:
        """A parent given as 'baseline', an experiment name under the prefix, or any branch/commit."""
        for candidate in (self.branch(parent), parent):
            commit = self.commit_of(candidate)
            if commit:
                return commit
        raise UsageError(
            f"unknown parent {parent!r}: name 'baseline', 'best', an experiment of this campaign or a branch"
        )

    def diff_size(self, a: str, b: str) -> int:
        """Lines added plus removed between two commits (for the simplicity rule)."""
        added, removed = self._line_changes(a, b)
        return added + removed

    def net_lines(self, a: str, b: str) -> int:
        """Lines added minus removed from a to b."""
        added, removed = self._line_changes(a, b)
        return added - removed

    def _line_changes(self, a: str, b: str) -> tuple[int, int]:
        """Lines added and removed from a to b, asked of git once per pair of commit ids (commits do not change)."""
        if a == b:
            return 0, 0
        found = self._numstats.get((a, b))
        if found is None:
            found = self.git.line_changes(a, b)
            if COMMIT_ID.fullmatch(a) and COMMIT_ID.fullmatch(b):
                self._numstats[a, b] = found
        return found

    def worktree_of(self, branch: str) -> Path | None:
        return self._worktrees().get(branch)

    def worktrees_under(self, folder: Path) -> dict[str, Path]:
        """Branch -> worktree, for the worktrees inside `folder` (a campaign's own)."""
        root = Path(folder).resolve()
        if not root.is_dir() or next(root.iterdir(), None) is None:  # an empty folder holds no worktree
            return {}
        return {b: p for b, p in self._worktrees().items() if p.resolve().is_relative_to(root)}

    def _worktrees(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        current: Path | None = None
        for line in self.git.run("worktree", "list", "--porcelain").splitlines():
            if line.startswith("worktree "):
                current = Path(line.split(" ", 1)[1])
            elif line.startswith("branch refs/heads/") and current is not None:
                found.setdefault(line[len("branch refs/heads/") :], current)
        return found

    # -- writing -----------------------------------------------------------------------------------
    @contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise ref and worktree updates across threads and processes."""
        with self._thread_lock, self._file_lock:
            yield

    def ensure_excluded(self, patterns: list[str]) -> None:
        """Keep our files untracked through .git/info/exclude (never the user's .gitignore)."""
        exclude = self.common_dir / "info" / "exclude"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        present = set(exclude.read_text().splitlines()) if exclude.exists() else set()
        missing = [p for p in patterns if p not in present]
        if missing:
            with exclude.open("a") as fh:
                if present and not exclude.read_text().endswith("\n"):
                    fh.write("\n")
                fh.write("".join(f"{p}\n" for p in missing))

    def is_baseline_record(self, branch: str, start: str) -> bool:
        """Whether `branch` holds exactly the commit `ensure_baseline` makes on top of `start`."""
        parents, _, subject = self.git.run("log", "-1", "--format=%P%n%s", branch).partition("\n")
        return parents.strip() == start and subject.strip() == BASELINE_SUBJECT

    def ensure_baseline(self, start: str) -> str:
        """`<prefix>/baseline` with an empty commit 'baseline: record starting point' on top of `start`."""
        branch = self.branch(BASELINE)
        with self.locked():
            existing = self.git.rev(branch)
            if existing:
                return existing
            tree = self.git.run("rev-parse", f"{start}^{{tree}}").strip()
            message = f"{BASELINE_SUBJECT}\n\n" + self._signoff()
            commit = self.git.run(
                *self.git.identity_args(), "commit-tree", tree, "-p", start, "-F", "-", input=message
            ).strip()
            self.git.run("update-ref", f"refs/heads/{branch}", commit, "")
            return commit

    def follow_up_baseline(self, base: str, why: str) -> str:
        """A justified rerun of a crashed baseline: a follow-up commit on `<prefix>/baseline`. It carries the
        person's fix when their branch has moved forward from `base` (the campaign's start); else the same tree."""
        branch = self.branch(BASELINE)
        with self.locked():
            head = self.git.rev(branch)
            user = self.git.rev("HEAD")
            if head is None:
                raise GitError(f"branch {branch} is missing: the campaign has no baseline to rerun")
            trees = {c: self.git.run("rev-parse", f"{c}^{{tree}}").strip() for c in {head, user} if c}
            moved = (
                user is not None
                and trees[user] != trees[head]
                and self.git.ok("merge-base", "--is-ancestor", base, user)
            )
            source = user if moved and user is not None else head
            tree = trees[source]
            title = f"baseline: rerun {why}" + (f", with {source[:10]} from your branch" if moved else "")
            message = f"{title}\n\n{self._signoff()}"
            commit = self.git.run(
                *self.git.identity_args(), "commit-tree", tree, "-p", head, "-F", "-", input=message
            ).strip()
            self.git.run("update-ref", f"refs/heads/{branch}", commit, head)
            return commit

    def reserve_name(self, wanted: str, taken: set[str]) -> str:
        """`wanted`, or `wanted-2`, `-3`... when a branch or a reserved name already has it."""
        existing = {b[len(self.prefix) + 1 :] for b in self.branches()}
        name, n = wanted, 1
        while name in existing or name in taken:
            n += 1
            name = f"{wanted}-{n}"
        return name

    def create(self, name: str, parent_commit: str, *, for_hand_edits: bool = False) -> Path:
        """Branch `<prefix>/<name>` at the parent and its own worktree; reuses both when they already exist.
        `for_hand_edits`: the person edits it before `try` (`autoresearch new`)."""
        branch = self.branch(name)
        path = self.worktrees / name
        with self.locked():
            # a new branch has no worktree yet; an existing one may (a hand-edited experiment, a rerun)
            if not self.git.ok("branch", branch, parent_commit):
                if not self.git.rev(branch):
                    self.git.run("branch", branch, parent_commit)  # refused for another reason: git says which
                existing = self.worktree_of(branch)
                if existing is not None and existing.is_dir():  # git still lists a folder deleted by hand
                    return existing
            path.parent.mkdir(parents=True, exist_ok=True)
            if not self.git.ok("worktree", "add", "--quiet", str(path), branch):
                self.git.run("worktree", "prune")  # a worktree folder deleted by hand still holds its branch
                self.git.run("worktree", "add", "--quiet", str(path), branch)
        self._init_submodules(path)
        if for_hand_edits:
            self._just_created.discard(path)
        else:
            self._just_created.add(path)
        return path

    def hand_edits(self, worktree: Path) -> list[str]:
        """Files the person edited in an experiment's worktree (after `autoresearch new`), before the recipe's
        change goes in; none, without asking git, in one this workspace has just checked out itself."""
        if worktree in self._just_created:
            self._just_created.discard(worktree)
            return []
        return self.changed_paths(worktree)

    def _init_submodules(self, worktree: Path) -> None:
        """Submodules the main checkout has initialised (NeMo-RL's 3rdparty/) are cloned locally into the
        worktree from the main checkout's own copies: no network, and the run sees the same code."""
        if not (self.repo / ".gitmodules").is_file():
            return  # no submodules to set up, and `git submodule status` is several git processes
        for line in self.git.run("submodule", "status", check=False).splitlines():
            if not line or line[0] == "-":
                continue
            path = line[1:].split()[1]
            source = self.repo / path
            if not (worktree / path).exists() or any((worktree / path).iterdir()):
                continue
            name = Git(source).run("rev-parse", "--path-format=absolute", "--git-dir").strip()
            Git(worktree).run(
                "-c",
                "protocol.file.allow=always",
                "-c",
                f"submodule.{path}.url={name}",
                "submodule",
                "update",
                "--init",
                "--",
                path,
                check=False,
            )

    def changed_paths(self, worktree: Path) -> list[str]:
        """Files edited in a worktree, minus run outputs (logs, checkpoints, event files, large untracked files)."""
        wt = Git(worktree)
        kept = []
        for code, path in _status_entries(wt):
            if _GENERATED.search(path):
                continue
            full = worktree / path
            if code == "??" and full.is_file() and full.stat().st_size > _MAX_UNTRACKED_BYTES:
                continue
            kept.append(path)
        return kept

    def check_patch(self, commit: str, patch: Path) -> None:
        """Refuse a patch that does not apply to `commit`, before any branch or worktree exists: it is tried on
        a throwaway index holding the commit's tree (the person's index is never read or written)."""
        with tempfile.TemporaryDirectory(prefix="autoresearch-patch-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            self.git.run("read-tree", commit, env=env)
            _apply_or_refuse(self.git, patch, commit, "--cached", env=env)

    def apply_patch(self, worktree: Path, patch: Path) -> list[str]:
        wt = Git(worktree)
        _apply_or_refuse(wt, patch, "HEAD")
        wt.run("apply", str(patch))
        return self.changed_paths(worktree)

    def commit(self, worktree: Path, paths: list[str], message: str, *, allow_empty: bool = False) -> str:
        """Stage exactly `paths` and commit them: one hypothesis-focused commit."""
        wt = Git(worktree)
        if paths:
            wt.run("add", "--", *paths)
        args = ["commit", "--quiet", "-s", "-F", "-"]
        if allow_empty or not paths:
            args.insert(1, "--allow-empty")
        if not paths:  # nothing of the index either: an engine killed between `add` and `commit` staged its change
            args.insert(1, "--only")
        with self.locked():
            try:
                wt.run(*self.git.identity_args(), *args, input=message)
            except GitError as err:
                raise GitError(f"{err} ({refusal_hint(wt)})") from None
        return self._head_commit(worktree)

    def probe_commit(self) -> str | None:
        """Why the person's git configuration would refuse our commits (signing, hooks), or None. Commits once
        as the engine does, in a detached throwaway worktree outside the repository: no branch, no ref."""
        with tempfile.TemporaryDirectory(prefix="autoresearch-probe-") as tmp:
            path = Path(tmp) / "probe"
            try:
                if not self.git.ok("worktree", "add", "--quiet", "--detach", str(path), "HEAD"):
                    return None  # no commit to start from: nothing can be probed, nothing is refused yet
                Git(path).run(
                    *self.git.identity_args(),
                    "commit",
                    "--quiet",
                    "-s",
                    "--allow-empty",
                    "-F",
                    "-",
                    input="autoresearch: preflight probe\n",
                )
                return None
            except GitError as err:
                return f"{str(err).split(': ', 1)[-1]} ({refusal_hint(Git(path))})"
            finally:
                self.git.run("worktree", "remove", "--force", str(path), check=False)
                self.git.run("worktree", "prune", check=False)

    def release(self, worktree: Path, *, discard: bool = False) -> bool:
        """Remove a worktree that holds nothing but its commit; keep it (and say so) when anything is left in it.
        With `discard`, what is left is the engine's own change whose commit git refused, and goes with it."""
        self._just_created.discard(worktree)
        if not worktree.exists():
            return True
        wt = Git(worktree)
        modules = _worktree_git_dir(wt) / "modules"
        with self.locked():
            if not modules.is_dir() and not discard:
                return self.git.ok("worktree", "remove", str(worktree))
            # submodule clones made for it, which git will not remove: force only when nothing else is there
            if (
                not discard
                and wt.run(
                    "status", "--porcelain", "--ignore-submodules=all", "--untracked-files=all", check=False
                ).strip()
            ):
                return False
            if modules.is_dir():
                shutil.rmtree(modules)
            return self.git.ok("worktree", "remove", "--force", str(worktree))

    def _signoff(self) -> str:
        ident = self.git.run(*self.git.identity_args(), "var", "GIT_COMMITTER_IDENT").strip()
        return f"Signed-off-by: {ident.rsplit('>', 1)[0]}>\n"


def _branch_in_head(head: bytes) -> str | None:
    """The branch a HEAD file names (`ref: refs/heads/NAME`); None for a detached HEAD (a commit id)."""
    text = head.decode(errors="replace").strip()
    return text[len("ref: refs/heads/") :] if text.startswith("ref: refs/heads/") else None


def _worktree_git_dir(wt: Git) -> Path:
    """A linked worktree's own git folder, read from its `.git` file (`gitdir: PATH`), else asked of git."""
    try:
        text = (wt.path / ".git").read_text()
    except OSError:
        text = ""
    if text.startswith("gitdir: "):
        found = Path(text[len("gitdir: ") :].strip())
        return found if found.is_absolute() else (wt.path / found).resolve()
    return Path(wt.run("rev-parse", "--path-format=absolute", "--git-dir").strip())


def _apply_or_refuse(git: Git, patch: Path, commit: str, *args: str, env: dict | None = None) -> None:
    """`git apply --check`; a failure is bad input naming the patch and git's first complaint."""
    try:
        git.run("apply", "--check", *args, str(patch), env=env)
    except GitError as err:
        first = str(err).split(": ", 1)[-1].splitlines()[0]
        raise UsageError(
            f"patch {str(patch)!r} does not apply to the parent commit {commit[:10]}: {first}; "
            "rebase the patch on the parent (--parent) or fix it"
        ) from None


def refusal_hint(git: Git) -> str:
    """What in the person's git configuration refuses a commit, and the fix."""
    hooks = Path(git.run("rev-parse", "--path-format=absolute", "--git-path", "hooks").strip())
    found = [h for h in ("pre-commit", "commit-msg", "prepare-commit-msg") if os.access(hooks / h, os.X_OK)]
    if found:
        return (
            f"the {' or '.join(found)} hook in {hooks} refused it: fix the hook, or point this repository's "
            "core.hooksPath elsewhere"
        )
    if git.run("config", "--bool", "commit.gpgsign", check=False).strip() == "true":
        return (
            "commit.gpgsign is set and signing failed: configure a usable key (user.signingkey), or run "
            "'git config commit.gpgsign false' in this repository"
        )
    return "git refused the commit"


def _status_entries(git: Git) -> list[tuple[str, str]]:
    out = git.run("status", "--porcelain=v1", "-z", "--untracked-files=all")
    items = out.split("\0")
    entries, i = [], 0
    while i < len(items):
        item = items[i]
        i += 1
        if not item:
            continue
        code, path = item[:2], item[3:]
        entries.append((code, path))
        if code[0] in "RC":
            i += 1  # the rename's source path follows
    return entries


def _status_paths(git: Git) -> list[str]:
    return [f"{code} {path}" for code, path in _status_entries(git)]
