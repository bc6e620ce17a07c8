"""Session memory written by the engine, following the session-memory skill's templates.

`session/<YYYYmmdd_HHMMSS>/` at the repository root (untracked), one per working session: `timeline.md` only
grows, one entry per checkpoint; `session_state.md` and `handoff.md` are rewritten where the campaign comes to
rest (a run launched, a result, a change of direction, the end), not at the checkpoints the next one follows
within moments (before and after an edit, before a launch); `files.md` lists what was read, changed and
generated. Another agent or person resumes from `handoff.md` with nothing lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from nrl_autoresearch.core.campaign import Campaign
from nrl_autoresearch.core.durable import file_version, replace_text
from nrl_autoresearch.core.ledger import Row, best
from nrl_autoresearch.core.redact import redact, redactor
from nrl_autoresearch.core.stoprules import StopStatus

ROOT = "session"
REUSE_WITHIN_S = 6 * 3600  # a session touched this recently is the same working session
PERIODIC_S = 30 * 60
SKILLS = {
    "auto-research": "the campaign loop: baseline first, one hypothesis per branch, stop rules as monitors",
    "nemo-rl-session-memory": "these files: checkpoint after the plan, around edits and launches, before handoff",
}


@dataclass
class Moment:
    """What a checkpoint needs to know of the campaign right now."""

    rows: list[Row]
    status: StopStatus
    in_flight: list[str]
    steering: list[str]
    current: str


def latest(repo: Path) -> Path | None:
    sessions = sorted(p for p in (repo / ROOT).glob("*_*") if p.is_dir())
    return sessions[-1] if sessions else None


class Session:
    def __init__(self, c: Campaign, *, new: bool = False):
        self.c = c
        found = latest(c.repo)
        fresh = found is None or new or time.time() - _mtime(found) > REUSE_WITHIN_S
        self.dir = (
            found if found is not None and not fresh else c.repo / ROOT / datetime.now().strftime("%Y%m%d_%H%M%S")
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.started = _read_started(self.dir / "session_state.md") or _now()
        self._last = 0.0
        self._lock = threading.Lock()
        if not (self.dir / "timeline.md").exists():
            (self.dir / "timeline.md").write_text("# Timeline\n")
        self._files = _read_files(self.dir / "files.md")
        self._written: dict[str, tuple[str, tuple[int, int, int] | None]] = {}  # name -> (text, file version)

    # -- checkpoints --------------------------------------------------------------------------------
    def checkpoint(self, kind: str, text: str, snap: Moment, *, passing: bool = False) -> None:
        """Append to the timeline and rewrite state and handoff: the moment, what happened, where things stand.
        A `passing` checkpoint, which the next one follows within moments, goes to the timeline alone."""
        entry = f"\n## {_now()} — {kind}\n- {text}\n- {snap.status.sentence}\n"
        mask = redactor()  # the environment's secrets looked up once for the three files
        with self._lock:
            with (self.dir / "timeline.md").open("a") as fh:
                fh.write(mask(entry))
            if passing:
                return
            top = best(snap.rows, maximize=self.c.objective.maximize)
            self._write("session_state.md", self._state(kind, text, snap, top), mask)
            self._write("handoff.md", self._handoff(snap, top), mask)
            self._last = time.time()

    def due(self) -> bool:
        """At least every 30 minutes while a long run is in flight."""
        return time.time() - self._last >= PERIODIC_S

    def file(self, section: str, path: str, why: str, *more: tuple[str, str, str]) -> None:
        """Record files as Inspected, Changed or Generated (kept across processes of the same session): each
        `(section, path, why)`, all in one rewrite of files.md."""
        with self._lock:
            for entry_section, entry_path, entry_why in ((section, path, why), *more):
                self._files[entry_section][entry_path] = entry_why
            lines = ["# Files\n"]
            for name, entries in self._files.items():
                lines.append(f"\n## {name}\n")
                lines += [f"- `{p}` - {w}\n" for p, w in entries.items()]
            self._write("files.md", "".join(lines))

    # -- renderings ---------------------------------------------------------------------------------
    def _goal(self, snap: Moment) -> str:
        goal = (
            self.c.options.get("goal")
            or f"{self.c.objective.direction} {self.c.objective.metric_name} of {_recipe(self.c)}"
        )
        extra = "".join(f"\n- steering (additive): {s}" for s in snap.steering)
        return goal + extra

    def _state(self, kind: str, text: str, snap: Moment, top: Row | None) -> str:
        status = [f"{len(snap.rows)} attempted; {snap.status.sentence}"]
        if top:
            status.append(f"best keep: {top.branch} ({top.metric_value:.6g})")
        if snap.in_flight:
            status.append("in flight: " + ", ".join(snap.in_flight))
        skills = dict(SKILLS)
        if self.c.recipe.get("kind") == "nemo-rl":
            skills["launch-nemo-rl"] = "how runs are launched (local, Slurm, Kubernetes)"
        return "\n".join(
            [
                "# Session State",
                "",
                f"- Session: {self.dir.name}",
                f"- Repo: {self.c.repo}",
                f"- Branch: {snap.current}",
                f"- Started: {self.started}",
                f"- Updated: {_now()}",
                "",
                "## Goal",
                self._goal(snap),
                "",
                "## Current Subtask",
                f"{kind}: {text}",
                "",
                "## Loaded Skills",
                *(f"- `{k}` - {v}" for k, v in skills.items()),
                "",
                "## Current Status",
                *(f"- {s}" for s in status),
                "",
                "## Plan",
                *(f"- [ ] {s}" for s in self._next(snap)),
                "",
                "## Assumptions",
                f"- the authoritative metric is {self.c.objective.metric_name} from {self.c.objective.source}",
                "- experiments start from the commit recorded at init; uncommitted user changes are left alone",
                "",
                "## Blockers",
                "- None known" if not snap.status.met else f"- {snap.status.sentence}",
                "",
            ]
        )

    def _handoff(self, snap: Moment, top: Row | None) -> str:
        rows = snap.rows
        last = rows[-1] if rows else None
        latest_log = last.log_path if last else "(no run yet)"
        lines = [
            "# Handoff",
            "",
            "## Resume From Here",
            f"Campaign `{self.c.name}` in {self.c.repo}: {self._goal(snap)}.",
            f"Objective: {self.c.objective.direction} `{self.c.objective.metric_name}` ({self.c.objective.source}).",
            "Stop rules (monitors): " + "; ".join(self.c.rules.monitors()) + ".",
            f"Branch prefix: `{self.c.prefix}/`. Last ledger index: {last.index if last else 0} ({self.c.ledger}).",
            f"Best keep: {f'`{top.branch}` ({top.metric_value:.6g})' if top else 'none yet'}.",
            f"Latest run.log: `{latest_log}`.",
            f"Status: {snap.status.sentence}.",
            "",
            "## Next Actions",
            *(f"- {s}" for s in self._next(snap)),
            "",
            "## Watch Outs",
            "- never stash, reset, force a checkout or delete a branch; experiments run in worktrees",
            "- keep every experiment branch; the ledger stays untracked (git notes mirror it)",
            "- follow-up steering is additive: the objective above stays unless the person replaces it",
            "",
        ]
        return "\n".join(lines)

    def _next(self, snap: Moment) -> list[str]:
        if snap.in_flight:
            return [
                f"let {', '.join(snap.in_flight)} finish (or run `autoresearch resume` to reattach after a restart)"
            ]
        if snap.status.met:
            return [
                "summarise the best result for the person and ask before continuing (`autoresearch run --continue N`)"
            ]
        return ["continue the loop: `autoresearch resume` (or `autoresearch run --yes`)"]

    def _write(self, name: str, text: str, mask: Callable[[str], str] = redact) -> None:
        """Rewrite a file unless it still holds exactly what this session last wrote there (the handoff often
        reads the same from one checkpoint to the next)."""
        path, masked = self.dir / name, mask(text)
        if self._written.get(name) == (masked, file_version(path)):
            return
        replace_text(path, masked)
        self._written[name] = (masked, file_version(path))


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _mtime(path: Path) -> float:
    return max((p.stat().st_mtime for p in path.iterdir()), default=path.stat().st_mtime)


def _read_started(path: Path) -> str | None:
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("- Started: "):
                return line.split(": ", 1)[1]
    return None


def _read_files(path: Path) -> dict[str, dict[str, str]]:
    files: dict[str, dict[str, str]] = {"Inspected": {}, "Changed": {}, "Generated": {}}
    section = None
    for line in path.read_text().splitlines() if path.exists() else []:
        if line.startswith("## "):
            section = line[3:].strip()
        elif section in files and line.startswith("- `") and "` - " in line:
            name, why = line[3:].split("` - ", 1)
            files[section][name] = why
    return files


def _recipe(c: Campaign) -> str:
    return c.recipe.get("path") or " ".join(c.recipe.get("command", []))
