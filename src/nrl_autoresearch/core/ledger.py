"""The research ledger: an untracked TSV with exactly the template's 15 columns, mirrored into git notes.

One attempted experiment is one row, appended once, whole or not at all (`durable.append_whole`) under a file lock.
Every row is also written as a git note on its experiment commit, so the ledger survives the loss of the TSV
(`rebuild`) and git alone can show it (`git notes --ref autoresearch show <commit>`).
"""

from __future__ import annotations

import heapq
import json
import math
import os
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from nrl_autoresearch.core.durable import append_whole, replace_text, torn_tail
from nrl_autoresearch.core.errors import Fault
from nrl_autoresearch.core.git import NOTES_REF, Git
from nrl_autoresearch.core.oslock import FileLock
from nrl_autoresearch.core.redact import redact, redactor

COLUMNS = (
    "index",
    "branch",
    "parent_commit",
    "commit",
    "recipe",
    "metric_name",
    "metric_value",
    "memory_gb",
    "elapsed_min",
    "launcher",
    "job_id",
    "command",
    "log_path",
    "status",
    "description",
)
HEADER = "\t".join(COLUMNS) + "\n"
STATUSES = ("keep", "discard", "crash")
# how a row's description says its run was stopped early by design (its partial value is no evidence)
PRUNED = "pruned at "
SCREENED = "screened at "  # a --screen run: a share of the training steps, by design
STOPPED_EARLY = (PRUNED, SCREENED)


def is_pruned(description: str) -> bool:
    """Stopped early (pruned, or a screen): its partial value is never a reference, a spread or evidence."""
    return any(f"; {reason}" in description for reason in STOPPED_EARLY)


def is_screen(description: str) -> bool:
    return f"; {SCREENED}" in description


@dataclass(frozen=True)
class Row:
    """One attempted experiment. `metric_value` is None when no valid metric was produced."""

    index: int
    branch: str
    parent_commit: str
    commit: str
    recipe: str
    metric_name: str
    metric_value: float | None
    memory_gb: float | None
    elapsed_min: float
    launcher: str
    job_id: str
    command: str
    log_path: str
    status: str
    description: str

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {self.status!r}")

    def to_line(self) -> str:
        """The TSV line: crash rows carry 0.000000 and 0.0; tabs and newlines never leak into a field."""
        crash = self.status == "crash" or self.metric_value is None
        values = {
            **{f.name: getattr(self, f.name) for f in fields(self)},
            "metric_value": "0.000000" if crash else f"{self.metric_value:.6f}",
            "memory_gb": "0.0" if crash or self.memory_gb is None else _memory(self.memory_gb),
            "elapsed_min": f"{self.elapsed_min:.1f}",
            "job_id": self.job_id or "none",
        }
        mask = redactor()  # the environment's secrets looked up once for the row's fields
        return "\t".join(mask(_one_line(str(values[c]))) for c in COLUMNS) + "\n"

    @classmethod
    def from_line(cls, line: str) -> Row:
        parts = line.rstrip("\r\n").split("\t")
        if len(parts) < len(COLUMNS):
            raise ValueError(f"expected {len(COLUMNS)} tab-separated fields, found {len(parts)}")
        raw: dict[str, Any] = dict(zip(COLUMNS, parts, strict=False))
        value = float(raw["metric_value"])
        return cls(
            **{
                **raw,
                "index": int(raw["index"]),
                "metric_value": None if raw["status"] == "crash" else value,
                "memory_gb": None if raw["status"] == "crash" else float(raw["memory_gb"]),
                "elapsed_min": float(raw["elapsed_min"]),
            },
        )

    def to_dict(self) -> dict:
        data = asdict(self)
        if data["metric_value"] is not None and math.isnan(data["metric_value"]):
            data["metric_value"] = None
        return data


def _memory(gb: float) -> str:
    """GiB with one decimal, and two significant digits below 1 GiB, so that 13 MB is not shown as 0.0."""
    return f"{gb:.1f}" if gb >= 1 or gb == 0 else f"{gb:.2g}"


def _one_line(text: str) -> str:
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


class Ledger:
    """The TSV file. Reads tolerate foreign rows (another campaign's prefix); writes go through `append`.

    The file is parsed once: later reads take only the bytes appended since (the file only grows, by whole lines,
    see `durable`), and read it all again when it was rewritten (a rebuild, a hand edit)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock = FileLock(str(self.path) + ".lock")
        self._read = _Read()
        self._reading = threading.Lock()

    def ensure(self) -> None:
        """Create the file with its header only, if it does not exist yet."""
        with self.lock:
            if not self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                append_whole(self.path, HEADER.encode())

    def rows(self, prefix: str | None = None) -> list[Row]:
        """Rows in file order; with `prefix`, only the branches under it. A torn last line is not a row."""
        return [row for row, _ in self.lines(prefix)]

    def lines(self, prefix: str | None = None) -> list[tuple[Row, str]]:
        """(row, the exact line in the file) in file order."""
        with self._reading:
            return [(r, line) for r, line in self._current() if prefix is None or r.branch.startswith(prefix + "/")]

    def _current(self) -> list[tuple[Row, str]]:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            self._read = _Read()
            return []
        try:
            stat = os.fstat(fd)
            seen = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
            if seen != self._read.seen:
                read = self._read if self._read.continued_by(fd, stat) else _Read()
                self._read = _Read()  # until the new part is parsed whole
                read.take(os.pread(fd, stat.st_size - read.consumed, read.consumed), self.path)
                read.seen, self._read = seen, read
            return self._read.rows
        finally:
            os.close(fd)

    def torn(self) -> str:
        """A last line whose write was cut short (a full disk, a kill), or ''."""
        return torn_tail(self.path).decode(errors="replace")

    def repair(self, notes: Notes) -> str | None:
        """Complete a torn last line from the git note that holds its row, or drop it (its row was never
        written whole, so its run is recorded again by recovery). Says what was done, or None."""
        with self.lock:
            fragment = self.torn()
            if not fragment:
                return None
            whole = next((e["row"] for _, e in notes.all_entries() if e["row"].startswith(fragment)), None)
            append_whole(self.path, whole.encode() if whole else b"")
        shown = fragment.split("\t", 1)[0]
        return (
            f"completed the torn last line of {self.path.name} (row {shown}) from its git note"
            if whole
            else f"dropped the torn last line of {self.path.name} (row {shown} was never written whole)"
        )

    def append(self, row: Row) -> str:
        """Append one row under the lock; return the exact line written. Refuses a duplicate index of a branch prefix."""
        line = row.to_line()
        with self.lock:
            if not self.path.exists():
                append_whole(self.path, HEADER.encode())
            prefix = row.branch.rsplit("/", 1)[0]
            if any(r.index == row.index for r in self.rows(prefix)):
                raise ValueError(f"row {row.index} of {prefix} is already in {self.path}")
            append_whole(self.path, line.encode())
        return line


@dataclass
class _Read:
    """What has been parsed of the file: its rows, up to the end of its last whole line."""

    rows: list[tuple[Row, str]] = field(default_factory=list)
    seen: tuple[int, int, int] | None = None  # inode, size, mtime of the version parsed
    consumed: int = 0  # bytes parsed, a whole number of lines
    numbered: int = 0  # lines parsed, the header included
    last: bytes = b""  # the last whole line parsed, to tell an append from a rewrite

    def continued_by(self, fd: int, stat: os.stat_result) -> bool:
        """True when the file is the one parsed with lines appended: the same inode, longer, the same last line
        where it was (anything else, such as a dropped torn line or a rewrite, is read again from the start)."""
        if self.seen is None or stat.st_ino != self.seen[0] or stat.st_size <= self.consumed:
            return False
        return os.pread(fd, len(self.last), self.consumed - len(self.last)) == self.last

    def take(self, data: bytes, path: Path) -> None:
        """Parse the whole lines of `data`, the bytes after `consumed`; a torn last line waits for the next read.
        All or nothing: a damaged line raises and leaves what was parsed before as it was."""
        pieces = data.split(b"\n")[:-1]
        found = []
        for number, raw in enumerate(pieces, self.numbered + 1):
            if number > 1 and raw.strip():
                found.append(_parse(number, raw, path))
        self.rows.extend(found)
        self.numbered += len(pieces)
        self.consumed += sum(len(raw) + 1 for raw in pieces)
        self.last = pieces[-1] + b"\n" if pieces else self.last


def _parse(number: int, raw: bytes, path: Path) -> tuple[Row, str]:
    try:
        line = raw.decode() + "\n"
        return Row.from_line(line), line
    except ValueError as err:  # UnicodeDecodeError included
        raise LedgerDamaged(
            f"line {number} of {path} is not a ledger row ({err}): run 'autoresearch ledger rebuild' "
            "to rewrite the file from the git notes"
        ) from None


class LedgerDamaged(Fault):
    """A line inside the TSV is not a row (edited by hand, or torn by an older version): the fix is a rebuild."""


class Notes:
    """The git-notes mirror: each experiment commit carries its rows as JSON lines under refs/notes/autoresearch."""

    def __init__(self, git: Git):
        self.git = git

    def add(self, commit: str, line: str, *, campaign: str, extra: dict | None = None, new: bool = False) -> None:
        """Attach one row to its commit (a commit run several times, like repeated baselines, holds several).
        `new`: the row was appended to the ledger just now, so no note can hold it yet (the note is written after
        the ledger line): on a commit without a note it takes one git call. Otherwise (a replay, or a commit with
        rows already) the note is read and rewritten with the row added, unless it holds it already."""
        entry = {
            "campaign": campaign,
            "appended_ns": time.time_ns(),
            "row": line,
            **({"extra": extra} if extra else {}),
        }
        identity = self.git.identity_args()
        if new:
            alone = redact(json.dumps(entry, sort_keys=True) + "\n")
            if self.git.ok(*identity, "notes", "--ref", NOTES_REF, "add", "-F", "-", commit, input=alone):
                return  # refused when the commit has a note already: then as below
        existing = self.entries(commit)
        if any(e["row"] == line for e in existing):
            return
        body = "".join(json.dumps(e, sort_keys=True) + "\n" for e in [*existing, entry])
        self.git.run(*identity, "notes", "--ref", NOTES_REF, "add", "-f", "-F", "-", commit, input=redact(body))

    def entries(self, commit: str) -> list[dict]:
        return _entries(self.git.run("notes", "--ref", NOTES_REF, "show", commit, check=False))

    def all_entries(self) -> list[tuple[str, dict]]:
        """Every (commit, entry) in append order, read in one `git cat-file --batch` (thousands of notes)."""
        listing = self.git.run("notes", "--ref", NOTES_REF, "list", check=False)
        pairs = [line.split() for line in listing.splitlines() if line.strip()]
        if not pairs:
            return []
        out = subprocess.run(
            ["git", "-C", str(self.git.path), "cat-file", "--batch"],
            capture_output=True,
            check=True,
            input="".join(f"{blob}\n" for blob, _ in pairs).encode(),
        ).stdout
        found = [
            (commit, entry)
            for (_, commit), body in zip(pairs, _batch_bodies(out), strict=True)
            for entry in _entries(body)
        ]
        return sorted(found, key=lambda ce: ce[1]["appended_ns"])


def _batch_bodies(out: bytes) -> list[str]:
    """The object contents of `git cat-file --batch` output, in order."""
    bodies, pos = [], 0
    while pos < len(out):
        end = out.index(b"\n", pos)
        size = int(out[pos:end].split()[2])
        bodies.append(out[end + 1 : end + 1 + size].decode())
        pos = end + 1 + size + 1
    return bodies


def _entries(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]


def rebuild(ledger: Ledger, notes: Notes) -> int:
    """Rewrite the TSV from the notes, byte for byte as it was appended; returns the number of rows."""
    lines = [entry["row"] for _, entry in notes.all_entries()]
    with ledger.lock:
        ledger.path.parent.mkdir(parents=True, exist_ok=True)
        replace_text(ledger.path, HEADER + "".join(lines))
    return len(lines)


def best(rows: list[Row], *, maximize: bool) -> Row | None:
    """The best kept configuration. Rows are grouped by commit (repeats and confirmations share one); a commit
    counts when its latest non-crash row is a keep, at the mean of its valid runs, which the returned row carries."""
    tops = running_best(rows, maximize=maximize)
    return tops[-1] if tops else None


def running_best(rows: list[Row], *, maximize: bool) -> list[Row | None]:
    """`best(rows[:i + 1])` for every i, in one pass: a heap of the commits' current means, whose stale entries
    (the commit has had a row since, or is no longer a keep) are dropped when they come to the top. Ties go to
    the commit that had a valid run first, as in `max`/`min` over the commits in order."""
    groups: dict[str, _Group] = {}
    heap: list[tuple[float, int, int, str]] = []
    tops: list[Row | None] = []
    for row in rows:
        if row.status != "crash" and row.metric_value is not None and math.isfinite(row.metric_value):
            group = groups.setdefault(row.commit, _Group(order=len(groups)))
            group.add(row)
            if row.status == "keep":
                heapq.heappush(heap, (-group.mean if maximize else group.mean, group.order, group.version, row.commit))
        while heap and not groups[heap[0][3]].current(heap[0][2]):
            heapq.heappop(heap)
        tops.append(groups[heap[0][3]].top() if heap else None)
    return tops


@dataclass
class _Group:
    """The valid runs of one commit so far: their sum and count, the latest one, and a version per change."""

    order: int
    total: float = 0
    count: int = 0
    version: int = 0
    last: Row | None = None
    _top: Row | None = None

    def add(self, row: Row) -> None:
        self.total += row.metric_value  # type: ignore[operator]
        self.count += 1
        self.version += 1
        self.last = row
        self._top = None

    @property
    def mean(self) -> float:
        return self.total / self.count

    def current(self, version: int) -> bool:
        return version == self.version and self.last is not None and self.last.status == "keep"

    def top(self) -> Row:
        if self._top is None:
            assert self.last is not None, "a group holds at least one row"
            self._top = replace(self.last, metric_value=self.mean)
        return self._top
