"""Minimal TensorBoard scalar writer: TFRecord framing around hand-encoded `Event` protos.

Pure Python (struct + table CRC32C) so the toy project needs neither TensorFlow nor torch,
while the files stay readable by the real `tensorboard` package.
"""

from __future__ import annotations

import math
import os
import socket
import struct
import time


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()
_FLOAT32_MAX = 3.4028234663852886e38


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum TFRecord framing uses."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits, value = value & 0x7F, value >> 7
        out.append(bits | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _length_delimited(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _event(step: int, file_version: str | None = None, summary: bytes | None = None) -> bytes:
    """Event{wall_time=1 double, step=2 int64, file_version=3 string, summary=5 Summary}."""
    out = b"\x09" + struct.pack("<d", time.time()) + b"\x10" + _varint(step)
    if file_version is not None:
        out += _length_delimited(3, file_version.encode())
    if summary is not None:
        out += _length_delimited(5, summary)
    return out


class EventWriter:
    """Appends scalar events to one `events.out.tfevents.*` file, flushing each record."""

    def __init__(self, log_dir: str) -> None:
        os.makedirs(log_dir, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.0"
        self.path = os.path.join(log_dir, name)
        self._file = open(self.path, "wb")  # noqa: SIM115 (kept open for appends, closed by close())
        self._write(_event(0, file_version="brain.Event:2"))

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        """Record Summary{value=1 Value{tag=1 string, simple_value=2 float}} at `step`."""
        value = float(value)
        if math.isfinite(value) and abs(value) > _FLOAT32_MAX:
            value = math.copysign(math.inf, value)  # struct refuses to round to float32 inf
        value_proto = _length_delimited(1, tag.encode()) + b"\x15" + struct.pack("<f", value)
        self._write(_event(step, summary=_length_delimited(1, value_proto)))

    def close(self) -> None:
        self._file.close()

    def _write(self, record: bytes) -> None:
        header = struct.pack("<Q", len(record))
        self._file.write(header + struct.pack("<I", _masked_crc(header)))
        self._file.write(record + struct.pack("<I", _masked_crc(record)))
        self._file.flush()
