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
from nrl_autoresearch.metrics.tfevents import proto_fields, read_varint

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
        body = data[pos + _CHUNK_HEAD : pos + _CHUNK_HEAD + length]
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
    """A run's history and summary records, kept undecoded: a long run writes thousands of each, and a key is
    looked for in their bytes before any is decoded. `summary_file` holds the summary file's keys, as JSON."""

    history: list[bytes] = field(default_factory=list)
    summaries: list[bytes] = field(default_factory=list)
    summary_file: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: bytes, start: int = 0) -> WandbLog:
        log = cls()
        for record in records(data, start):
            for number, wire, message in proto_fields(record):
                if wire == 2 and number == _HISTORY:
                    log.history.append(message)
                elif wire == 2 and number == _SUMMARY:
                    log.summaries.append(message)
        return log

    def logged(self, key: str) -> Iterator[tuple[int, str, str | None, str | None]]:
        """(position, value, `_step`, `_timestamp`) of each history row that logged `key`, values as JSON.

        Rows are searched for the key's bytes and read where they are found: a long run has thousands of rows
        of dozens of keys, and decoding each one would make a live reading slower than the run's own steps.
        """
        tags = _key_tags(key)
        for position, message in enumerate(self.history):
            if not any(tag in message for tag in tags):
                continue
            value = _value_at(message, tags)
            if value is not None:
                yield position, value, _value_at(message, _STEP_TAGS), _value_at(message, _TIME_TAGS)
                continue
            row = dict(_items(message, _UPDATE))  # a layout the search does not know: decode the row
            if key in row:
                yield position, row[key], row.get("_step"), row.get("_timestamp")

    def last_step(self) -> float:
        if not self.history:
            return 0.0
        return _plain(dict(_items(self.history[-1], _UPDATE)).get("_step"), len(self.history) - 1)

    def final(self, key: str) -> str | None:
        """The summary's last value of `key` as JSON (the summary file's, where there is one); a dotted key also
        reaches into a summary value that is a dict."""
        for item, value in self.summary_file.items():
            found = _within(key, item, value)
            if found is not None:
                return found
        first = key.split(".", 1)[0].encode()
        for message in reversed(self.summaries):
            if first not in message:
                continue
            for item, _ in _items(message, _REMOVE):
                if key == item or key.startswith(item + "."):
                    return None
            for item, value in _items(message, _UPDATE):
                if key == item or key.startswith(item + "."):
                    return _within(key, item, value)
        return None

    def logged_keys(self) -> set[str]:
        """Every key in the history and the summary (decodes them all: for saying what is there)."""
        found = {key for message in self.history + self.summaries for key, _ in _items(message, _UPDATE)}
        return found | set(self.summary_file)


def _tagged(field_number: int, text: str) -> bytes:
    data = text.encode()
    return bytes([field_number << 3 | 2]) + _varint_bytes(len(data)) + data


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def _key_tags(key: str) -> tuple[bytes, ...]:
    """The bytes an item's key is written as: nested-key parts (wandb's writer now) or one `key` field (earlier)."""
    nested = b"".join(_tagged(_NESTED_KEY, part) for part in key.split("."))
    return tuple(dict.fromkeys((nested, _tagged(_NESTED_KEY, key), _tagged(_KEY, key))))


_STEP_TAGS, _TIME_TAGS = _key_tags("_step"), _key_tags("_timestamp")
_VALUE_TAG = _varint_bytes(_VALUE_JSON << 3 | 2)
_ITEM_TAG = _varint_bytes(_UPDATE << 3 | 2)


def _value_at(message: bytes, tags: tuple[bytes, ...]) -> str | None:
    """The JSON value of the history item whose key is written as one of `tags`, found by its bytes: the key's
    fields followed by the value's, the item starting where the key does (so no longer key merely ends so)."""
    for tag in tags:
        head = tag + _VALUE_TAG
        at = message.find(head)
        while 0 <= at < len(message) - len(head):
            length, begin = read_varint(message, at + len(head))
            item = _ITEM_TAG + _varint_bytes(begin + length - at)
            if at >= len(item) and message[at - len(item) : at] == item and begin + length <= len(message):
                return message[begin : begin + length].decode("utf-8", "replace")
            at = message.find(head, at + 1)
    return None


def _within(key: str, item: str, value: str) -> str | None:
    """`key`'s value as JSON, given the summary item `item` holding `value`: itself, or a part of a dict."""
    if key == item:
        return value
    if not key.startswith(item + "."):
        return None
    try:
        found = json.loads(value)
        for part in key[len(item) + 1 :].split("."):
            found = found[part]
    except (ValueError, KeyError, TypeError):
        return None
    return json.dumps(found)


def number(text: str) -> float | None:
    """A logged value as a float (NaN and infinities included); None for null; NotANumber for anything else."""
    try:
        return float(text)  # a JSON number, NaN or Infinity as wandb writes them: the common case, made cheap
    except ValueError:
        pass
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
        logs = [
            (path, log)
            for path in run.files(_LOG)
            if _RUN_DIR.match(path.parent.name)
            for log in [self._load(run, path)]
            if log.history or log.summaries or log.summary_file
        ]
        for path, log in reversed(logs):
            reading = self._reading(path, log)
            if reading is not None:
                return reading
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
                log.summary_file = {k: json.dumps(v) for k, v in written.items()} if isinstance(written, dict) else {}
        except (OSError, ValueError):
            pass  # no summary file (offline) or one being rewritten: the log's own summary stands
        return log

    def _reading(self, path: Path, log: WandbLog) -> Reading | None:
        """The key's curve from the history, ending with the summary's value where that differs; None without either."""
        where = f"W&B key {self.arg} in {path}"
        points: list[Point] = []
        for position, logged, step_json, time_json in log.logged(self.arg):
            step = _plain(step_json, position)
            try:
                value = number(logged)
            except NotANumber as err:
                return Reading(points, where, f"W&B key {self.arg} is {err} at step {step:g}, not a number")
            if value is not None:
                points.append(Point(step, value, _plain(time_json, None)))
        final = log.final(self.arg)
        try:
            value = number(final) if final is not None else None
        except NotANumber as err:
            return Reading(points, where, f"W&B summary of {self.arg} is {err}, not a number")
        if value is not None and (not points or not _same(points[-1].value, value)):
            points.append(Point(points[-1].step if points else log.last_step(), value))  # set in the summary
        return Reading(points, where) if points else None


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
