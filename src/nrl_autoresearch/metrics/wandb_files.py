"""`wandb:KEY`: the objective as the run's own W&B logger wrote it into the run's folders, online or offline.

`wandb` keeps each run in `wandb/run-*/` (online) or `wandb/offline-run-*/`: `run-<id>.wandb`, the run's
transaction log, and, online, `files/wandb-summary.json`. The log is a LevelDB-style record stream: a 7-byte
file header, then 32 KiB blocks of chunks, each with a 7-byte header (CRC-32 of its type and data, length, type);
a record that does not fit a block's room is split into FIRST, MIDDLE and LAST chunks. Each record is a protobuf
`Record`; its history records give the curve (`_step`, `_timestamp`), its summary records (or the summary file)
the final value. Neither `wandb` nor the network is needed to read; a torn tail (a run still writing) ends it.
"""

from __future__ import annotations

import json
import math
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.metric import MetricSource, NotANumber, Point, Reading, RunOutputs
from nrl_autoresearch.metrics.tfevents import proto_fields

_LOG = re.compile(r"^run-[\w-]+\.wandb$")
_RUN_DIR = re.compile(r"^(offline-)?run-")
_SUMMARY_FILE = Path("files", "wandb-summary.json")
_HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)  # ident, magic, version
_BLOCK, _CHUNK_HEAD = 32768, 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
_HISTORY, _SUMMARY = 2, 3  # fields of Record
_UPDATE, _REMOVE = 1, 2  # fields of SummaryRecord (HistoryRecord's items are field 1 too)
_KEY, _NESTED_KEY, _VALUE_JSON = 1, 2, 16  # fields of HistoryItem and SummaryItem
_KEYS_SHOWN = 15


def records(data: bytes, start: int = 0) -> Iterator[bytes]:
    """Each whole record of a W&B transaction log whose first chunk begins at byte `start` or later.

    A chunk that is cut short or fails its CRC ends the stream: it is the tail a running writer has not finished.
    """
    if not data.startswith(_HEADER):
        return
    pos, began, parts = len(_HEADER), 0, list[bytes]()
    while True:
        room = _BLOCK - pos % _BLOCK
        if room < _CHUNK_HEAD:  # a block's last bytes are zero padding
            pos += room
            continue
        if pos + _CHUNK_HEAD > len(data):
            return
        crc, length, kind = struct.unpack_from("<IHB", data, pos)
        body = data[pos + _CHUNK_HEAD:pos + _CHUNK_HEAD + length]
        if len(body) < length or kind not in (_FULL, _FIRST, _MIDDLE, _LAST) or _crc(kind, body) != crc:
            return
        if kind in (_FULL, _FIRST):
            began, parts = pos, []
        parts.append(body)
        pos += _CHUNK_HEAD + length
        if kind in (_FULL, _LAST) and began >= start:
            yield b"".join(parts)


def _crc(kind: int, body: bytes) -> int:
    return zlib.crc32(body, zlib.crc32(bytes([kind])))


def _items(message: bytes, wanted: int) -> Iterator[tuple[str, str]]:
    """(key, value as JSON) of the history or summary items in field `wanted`; nested keys joined by '.'."""
    for number, wire, raw in proto_fields(message):
        if number != wanted or wire != 2:
            continue
        key, nested, value = "", [], ""
        for part, part_wire, text in proto_fields(raw):
            if part_wire == 2 and part in (_KEY, _NESTED_KEY, _VALUE_JSON):
                decoded = text.decode("utf-8", "replace")
                if part == _KEY:
                    key = decoded
                elif part == _NESTED_KEY:
                    nested.append(decoded)
                else:
                    value = decoded
        yield key or ".".join(nested), value


@dataclass
class WandbLog:
    """What a run's transaction log holds: its history rows and its summary (each key -> its value as JSON)."""

    rows: list[dict[str, str]] = field(default_factory=list)
    summary: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: bytes, start: int = 0) -> WandbLog:
        log = cls()
        for record in records(data, start):
            for number, wire, message in proto_fields(record):
                if wire == 2 and number == _HISTORY:
                    log.rows.append(dict(_items(message, _UPDATE)))
                elif wire == 2 and number == _SUMMARY:
                    log.summary.update(_items(message, _UPDATE))
                    for key, _ in _items(message, _REMOVE):
                        log.summary.pop(key, None)
        return log

    def logged_keys(self) -> set[str]:
        return {key for row in self.rows for key in row} | set(self.summary)

    def final(self, key: str) -> str | None:
        """The summary's value of `key` as JSON; a dotted key also reaches into a summary value that is a dict."""
        if key in self.summary:
            return self.summary[key]
        parts = key.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            head = ".".join(parts[:cut])
            if head in self.summary:
                try:
                    value = json.loads(self.summary[head])
                    for part in parts[cut:]:
                        value = value[part]
                except (ValueError, KeyError, TypeError):
                    return None
                return json.dumps(value)
        return None


def number(text: str) -> float | None:
    """A logged value as a float (NaN and infinities included); None for null; NotANumber for anything else."""
    try:
        value = json.loads(text)
    except ValueError:
        raise NotANumber(_shown(text) or "an empty value") from None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise NotANumber(_shown(text))
    try:
        return float(value)
    except OverflowError:
        raise NotANumber(f"{text[:20]}... (too large for a float)") from None


class Wandb(MetricSource):
    kind = "wandb"

    def __init__(self, arg: str):
        super().__init__(arg)
        if not arg or arg.strip() != arg:
            raise UsageError("bad --metric-source 'wandb:': give the key the run logs with wandb.log (wandb:val/acc)")

    def read(self, run: RunOutputs) -> Reading | None:
        logs = [(path, log) for path in run.files(_LOG) if _RUN_DIR.match(path.parent.name)
                for log in [self._load(run, path)] if log.rows or log.summary]
        for path, log in reversed(logs):
            if self.arg in log.logged_keys() or log.final(self.arg) is not None:
                return self._reading(path, log)
        if not logs:
            return None
        path, log = logs[-1]
        logged = sorted(k for k in log.logged_keys() if not k.startswith("_"))
        more = f" and {len(logged) - _KEYS_SHOWN} more" if len(logged) > _KEYS_SHOWN else ""
        shown = ", ".join(logged[:_KEYS_SHOWN]) + more or "no key"
        return Reading([], f"W&B run {path}", f"W&B key {self.arg} was never logged: the run logged {shown}")

    @staticmethod
    def _load(run: RunOutputs, path: Path) -> WandbLog:
        """What this run wrote: the log's records past its old end, and the summary file when the run wrote it."""
        data = path.read_bytes()
        log = WandbLog.parse(data, run.before.old_size(path, data))
        summary = path.parent / _SUMMARY_FILE
        try:
            if run.before.changed(summary, summary.stat()):
                written = json.loads(summary.read_text())
                log.summary.update({k: json.dumps(v) for k, v in written.items()} if isinstance(written, dict) else {})
        except (OSError, ValueError):
            pass  # no summary file (offline) or one being rewritten: the log's own summary stands
        return log

    def _reading(self, path: Path, log: WandbLog) -> Reading:
        where = f"W&B key {self.arg} in {path}"
        points: list[Point] = []
        for index, row in enumerate(log.rows):
            if self.arg not in row:
                continue
            step = _plain(row.get("_step"), index)
            try:
                value = number(row[self.arg])
            except NotANumber as err:
                return Reading(points, where, f"W&B key {self.arg} is {err} at step {step:g}, not a number")
            if value is not None:
                points.append(Point(step, value, _plain(row.get("_timestamp"), None)))
        final = log.final(self.arg)
        try:
            value = number(final) if final is not None else None
        except NotANumber as err:
            return Reading(points, where, f"W&B summary of {self.arg} is {err}, not a number")
        if value is not None and (not points or not _same(points[-1].value, value)):
            last_step = _plain(log.rows[-1].get("_step"), len(log.rows) - 1) if log.rows else 0.0
            points.append(Point(points[-1].step if points else last_step, value))  # set in the summary, not logged last
        return Reading(points, where)


def _shown(text: str) -> str:
    return text if len(text) <= 40 else text[:40] + "..."


def _plain(text: str | None, default):
    """A bookkeeping value (`_step`, `_timestamp`) as a float, or `default` where it is absent or odd."""
    try:
        value = number(text) if text is not None else None
    except NotANumber:
        value = None
    return default if value is None else value


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))
