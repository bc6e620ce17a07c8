"""`agent:"COMMAND"`, an external coding agent (`claude -p`, `codex exec`, any script) makes each hypothesis.

Per attempt the agent runs in a scratch detached worktree of the best keep (the baseline before any keep),
under the campaign folder and removed afterwards, so the person's working tree is never touched. It reads
AUTORESEARCH_BRIEF.md there (its path is also in $AUTORESEARCH_BRIEF): the objective, the ledger, the best
keep's diff, the steering notes, exploration ideas and the rules. It edits files and names its change in
AUTORESEARCH_RESULT.json or as a JSON last line of its output. Its diff, minus those two files, becomes the
hypothesis's patch; a diff that touches a protected path is refused. An agent that fails, times out (its whole
process tree is killed), changes nothing or edits protected paths yields a hypothesis with `failure`, which the
engine records as a crash. After a crash, the same agent is asked to fix its change with the log's tail.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shlex
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from nrl_autoresearch.core.campaign import REPORTS, Campaign
from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.git import Git, Snapshot
from nrl_autoresearch.core.history import History
from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.core.launcher import JobState, RunSpec
from nrl_autoresearch.core.ledger import Row
from nrl_autoresearch.core.names import BASELINE, slugify
from nrl_autoresearch.core.proposer import Proposer, ProposerContext, Repository, next_number
from nrl_autoresearch.core.redact import protect_command, redact
from nrl_autoresearch.core.session import ROOT as SESSIONS
from nrl_autoresearch.core.stoprules import format_duration
from nrl_autoresearch.launchers.local import LocalLauncher

BRIEF = "AUTORESEARCH_BRIEF.md"
RESULT = "AUTORESEARCH_RESULT.json"
_OUTSIDE_DIFF = (".", f":(exclude){BRIEF}", f":(exclude){RESULT}")
DEFAULT_TIMEOUT_S = 3600.0
LEDGER_ROWS = 40
DIFF_LINES = 150
KNOBS_SHOWN = 25
# the exploration guide, a few ideas per area
IDEAS = (
    (
        "correctness and backend",
        (
            "fix a shared compatibility layer rather than adding a recipe-only workaround",
            "check generation backend, attention implementation and logprob paths when metrics look wrong",
        ),
    ),
    (
        "prompt and rollout format",
        (
            "remove boilerplate so more tokens go to the task",
            "a stricter answer schema with explicit delimiters; align stop tokens with it",
            "move max_new_tokens together with the sequence length",
        ),
    ),
    (
        "batch, sequence and precision",
        (
            "raise the microbatch size until memory or stability limits it",
            "trade gradient accumulation against rollout batch size",
            "sequence packing when padding waste is high; bf16 against fp16",
        ),
    ),
    ("optimizer and scheduler", ("retune the learning rate and warmup after any batch layout change",)),
    (
        "reward and data",
        (
            "reward scaling, clipping or shaping when completions look better than the score",
            "a less noisy validation split; a dataset mix that feeds the target behaviour",
        ),
    ),
    (
        "synchronous vs asynchronous",
        (
            "split actor and learner when generation stalls the trainer",
            "max_trajectory_age_steps when stale data hurts quality",
        ),
    ),
)
CRASH = """
## Your change crashed

This folder holds your change as experiment `{name}`, committed. Its run crashed; the last lines of its log:

```
{tail}
```

Fix the crash with the smallest change (a typo, a missing import, a wrong key or shape). Do not start another
idea and do not commit: the campaign commits your fix and runs it again.
"""


class AgentProposer(Proposer):
    name = "agent"

    def __init__(
        self,
        command: str,
        context: ProposerContext,
        *,
        timeout_s: float | None = None,
        protected: tuple[str, ...] = (),
        grace_s: float = 10.0,
    ):
        """`timeout_s`: each call's limit (default $AUTORESEARCH_AGENT_TIMEOUT_S, else an hour); `protected`: more
        globs the agent may not change, besides `default_protected`; `grace_s`: how long the agent has to exit
        after SIGTERM at its limit before SIGKILL. A relative path in the command resolves in the checkout."""
        argv = shlex.split(command or "")
        if not argv:
            raise UsageError('--proposer agent needs a command: agent:"claude -p" or agent:"python my_agent.py"')
        if shutil.which(argv[0]) is None and not Path(argv[0]).is_file():
            raise UsageError(f"agent command {argv[0]!r} not found: give a program on PATH or a path to it")
        self.argv = protect_command(argv)
        self.context = context
        self.repository = context.repository
        self.timeout_s = timeout_s or _env_seconds("AUTORESEARCH_AGENT_TIMEOUT_S", DEFAULT_TIMEOUT_S)
        self.protected = (*default_protected(context.campaign), *protected)
        self.folder = context.campaign.dir / "agent"
        self._launcher = LocalLauncher(grace_s)

    def propose(self, history: History) -> Hypothesis | None:
        index = next_number(history)
        fallback = f"agent-{index}"
        parent, commit = self._parent(history)
        brief = self.brief(history, parent, commit)
        log = self.folder / f"{fallback}.log"
        with self._scratch(commit, fallback) as tree:
            failure = self._call(tree, brief, log)
            changed = [] if failure else self._stage(tree, commit)
            failure = failure or self._refusal(changed) or (None if changed else "produced no change")
            if failure:
                return Hypothesis(fallback, f"agent attempt {index}", parent, failure=f"agent {failure}")
            patch = self.folder / f"{fallback}.diff"
            patch.write_text(Git(tree).run("diff", "--cached", "--binary", commit, "--", *_OUTSIDE_DIFF))
            name, description = _answer(tree / RESULT, log)
        return Hypothesis(
            name or fallback,
            description or f"agent change {index}",
            parent,
            patch=str(patch),
            fix=partial(self._fix, brief),
        )

    def preview(self, history: History, n: int = 3) -> list[str]:
        return [
            f"{shlex.join(self.argv)} makes one change per attempt in a scratch checkout of the best keep, "
            f"reading {BRIEF}; limit {format_duration(self.timeout_s)}, protected: {', '.join(self.protected)}"
        ]

    def brief(self, history: History, parent: str, commit: str) -> str:
        """What the agent reads: objective, ledger, best keep, steering, settings, ideas and rules."""
        c = self.context.campaign
        goal = c.options.get("goal")
        parts = [
            f"# Research brief: campaign {c.name}\n",
            "You are one step of an autonomous research campaign on a training recipe. Propose ONE hypothesis and "
            "make the smallest change to the files of this folder that tests it; the campaign then runs it and "
            "keeps it only if the metric improves.\n",
            "## Objective\n",
            f"{c.objective.direction} `{c.objective.metric_name}` (read from {c.objective.source}, {c.objective.aggregate} "
            f"value of the run); a keep must beat its parent by more than {c.min_delta} and the run-to-run noise."
            + (f"\nThe person's goal: {goal}" if goal else "")
            + "\n",
            f"This folder is a checkout of `{parent}` (commit {commit[:10]}): your change is tested against it.\n",
        ]
        if history.steering:
            parts += ["## Steering from the person (follow it)\n", *(f"- {s}" for s in history.steering), ""]
        parts += ["## Ledger so far\n", ledger_table(history.rows, c.objective.metric_name), ""]
        if history.diagnoses:
            parts += ["## Symptoms of recent runs\n", symptoms_text(history), ""]
        parts += [
            self._best(history),
            "## Settings of the recipe worth moving (current values)\n",
            knobs_text(self.context, commit),
            "",
            "## Exploration ideas\n",
            ideas_text(),
            "",
            self._rules(),
        ]
        return redact("\n".join(parts) + "\n")

    def _best(self, history: History) -> str:
        top = history.best
        if top is None or top.branch == self.repository.branch(BASELINE):
            return "## Best keep\n\nNo keep beyond the baseline yet.\n"
        diff = self.repository.git.run("diff", self.context.campaign.base_commit, top.commit).splitlines()
        more = f"\n({len(diff) - DIFF_LINES} more lines)" if len(diff) > DIFF_LINES else ""
        name = top.branch.rsplit("/", 1)[1]
        return (
            f"## Best keep: `{name}` (row {top.index}, {self.context.campaign.objective.metric_name} {top.metric_value:.6g})\n\n"
            "Its change against the baseline:\n\n```diff\n" + "\n".join(diff[:DIFF_LINES]) + f"\n```{more}\n"
        )

    def _rules(self) -> str:
        return "\n".join(
            [
                "## Rules\n",
                "- One hypothesis, the smallest change that tests it; a simplification that holds the metric is a win.",
                "- Do not repeat a change the ledger already tried; after a crash, prefer a different idea.",
                "- Edit files only; do not commit, create branches or run git commands that change anything.",
                "- Do not run the full training: the campaign runs it after you.",
                f"- Off limits (a change there is refused): {', '.join(self.protected)}.",
                f"- You have {format_duration(self.timeout_s)}; at the limit your whole process tree is killed.",
                f'- When done, write {RESULT} here: {{"name": "short-kebab-case-name", "description": "one line: what '
                'you changed and why it should help"}, or print that JSON object as the last line of your output.',
            ]
        )

    # -- running the agent ----------------------------------------------------------------------------
    def _parent(self, history: History) -> tuple[str, str]:
        """The best keep (by experiment name, so the patch applies where it was made), else the baseline."""
        top = history.best
        if top is None or top.branch == self.repository.branch(BASELINE):
            return BASELINE, self.context.baseline_commit()
        return top.branch.rsplit("/", 1)[1], top.commit

    @contextmanager
    def _scratch(self, commit: str, name: str) -> Iterator[Path]:
        """A detached worktree of `commit` under the campaign folder, removed afterwards whatever happened."""
        path = self.folder / name
        self._remove(path)  # left by an engine that was killed
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.repository.locked():
            self.repository.git.run("worktree", "add", "--detach", "--quiet", str(path), commit)
        try:
            yield path
        finally:
            self._remove(path)

    def _remove(self, path: Path) -> None:
        with self.repository.locked():
            self.repository.git.run("worktree", "remove", "--force", "--force", str(path), check=False)
            shutil.rmtree(path, ignore_errors=True)
            self.repository.git.run("worktree", "prune", check=False)

    def _call(self, folder: Path, brief: str, log: Path) -> str | None:
        """Run the agent in `folder` with `brief`, in its own process group, within its limit. Why it failed, or None."""
        (folder / BRIEF).write_text(brief)
        spec = RunSpec(
            name="agent",
            argv=self.argv,
            cwd=folder,
            log_path=log,
            run_dir=log.parent,
            env={"AUTORESEARCH_BRIEF": str(folder / BRIEF), "AUTORESEARCH_RESULT": str(folder / RESULT)},
            timeout_s=self.timeout_s,
        )
        try:
            job = self._launcher.submit(spec)
        except OSError as err:
            return f"could not start ({err})"
        finally:
            self._launcher.close()  # the agent's calls are minutes apart: no masker kept waiting between them
        try:
            result = job.wait(should_stop=self._stop_requested)
        except BaseException:  # Ctrl-C reaches only the engine: the agent's process group ends with it
            job.cancel("interrupted")
            raise
        if result.state == JobState.TIMEOUT:
            return f"timed out after {format_duration(self.timeout_s)}; its process tree was killed"
        return None if result.succeeded else f"failed ({result.reason}); its output is in {log.name}"

    def _stop_requested(self) -> str | None:
        return "stopped by the person (autoresearch stop)" if self.context.stop_requested() else None

    def _stage(self, tree: Path, commit: str) -> list[str]:
        """Stage the agent's edits (run outputs aside); the paths that differ from `commit`, its own commits included."""
        paths = [p for p in self.repository.changed_paths(tree) if p not in (BRIEF, RESULT)]
        git = Git(tree)
        if paths:
            git.run("add", "--all", "--", *paths)
        return git.run("diff", "--cached", "--name-only", commit, "--", *_OUTSIDE_DIFF).splitlines()

    def _refusal(self, paths: list[str]) -> str | None:
        touched = [p for p in paths if is_protected(p, self.protected)]
        return f"edited protected paths ({', '.join(touched)}): refused" if touched else None

    # -- crash triage ---------------------------------------------------------------------------------
    def _fix(self, brief: str, worktree: Path, log_tail: str) -> bool:
        """The agent again, in the experiment's worktree, with the crash appended to its brief. True when it
        changed files; a fix that fails or touches a protected path is undone and refused."""
        before = _fingerprint(self.repository, worktree)
        text = brief + CRASH.format(name=worktree.name, tail=redact(log_tail.rstrip()))
        failure = self._call(worktree, text, self.folder / f"{worktree.name}-fix.log")
        for extra in (BRIEF, RESULT):
            (worktree / extra).unlink(missing_ok=True)
        after = _fingerprint(self.repository, worktree)
        changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
        refusal = failure or self._refusal(changed)
        if refusal:
            self.context.say(f"agent fix of {worktree.name} not kept: {refusal}")
            _undo(worktree, changed)
            return False
        return bool(changed)


def default_protected(c: Campaign) -> tuple[str, ...]:
    """The ledger, the reports and session folders, git's own files, and the globs the campaign declares
    (option `protected`: its evaluation and metric files)."""
    return (c.ledger, REPORTS, SESSIONS, ".git", ".gitmodules", *c.options.get("protected", ()))


def is_protected(path: str, globs: tuple[str, ...]) -> bool:
    """A glob matches the path or one of its folders."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatchcase(p, g.rstrip("/")) for g in globs for p in prefixes)


def ledger_table(rows: list[Row], metric: str) -> str:
    """The latest rows as a compact Markdown table."""
    if not rows:
        return "(no row yet)"
    shown = rows[-LEDGER_ROWS:]
    lines = [f"| # | experiment | status | {metric} | description |", "|---|---|---|---|---|"]
    for r in shown:
        value = "—" if r.status == "crash" or r.metric_value is None else f"{r.metric_value:.6g}"
        what = r.description.replace("|", "/").replace("\n", " ")
        lines.append(f"| {r.index} | {r.branch.rsplit('/', 1)[1]} | {r.status} | {value} | {what} |")
    earlier = len(rows) - len(shown)
    return "\n".join(lines) + (f"\n\n({earlier} earlier rows not shown)" if earlier else "")


def symptoms_text(history: History, last: int = 3) -> str:
    """What the engine read in the latest runs' logs and scalars, each with the area it points to."""
    return "\n".join(f"- run {d.run}: " + "; ".join(d.symptoms) for d in history.diagnoses[-last:])


def knobs_text(context: ProposerContext, commit: str) -> str:
    knobs = context.recipe.knobs(Snapshot(context.repository.git, commit))[:KNOBS_SHOWN]
    return (
        "\n".join(f"- `{k.key}` = {json.dumps(k.current, default=str)} ({k.area}, {k.risk} risk)" for k in knobs)
        or "(none listed)"
    )


def ideas_text() -> str:
    return "\n".join(f"- {area}: " + "; ".join(ideas) for area, ideas in IDEAS)


def _env_seconds(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        raise UsageError(f"${name} must be a number of seconds, not {os.environ[name]!r}") from None


def _answer(result: Path, log: Path) -> tuple[str | None, str]:
    """(name, description) from the result file, else from a JSON last line of the agent's output."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()] if log.exists() else []
    for text in ([result.read_text(errors="replace")] if result.is_file() else []) + lines[-1:]:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and isinstance(data.get("name"), str) and data["name"].strip():
            return slugify(data["name"]), redact(str(data.get("description", "")).strip())
    return None, ""


def _fingerprint(repository: Repository, worktree: Path) -> dict[str, str]:
    """Changed paths of a worktree and a digest of each (deleted: empty), to see what a command changed."""
    found = {}
    for path in repository.changed_paths(worktree):
        full = worktree / path
        found[path] = hashlib.sha256(full.read_bytes()).hexdigest() if full.is_file() else ""
    return found


def _undo(worktree: Path, paths: list[str]) -> None:
    """Put the paths back as the worktree's commit has them (new files removed)."""
    git = Git(worktree)
    for path in paths:
        if git.ok("cat-file", "-e", f"HEAD:{path}"):
            git.run("checkout", "HEAD", "--", path)
        else:
            (worktree / path).unlink(missing_ok=True)
