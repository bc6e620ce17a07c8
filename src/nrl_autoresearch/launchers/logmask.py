"""A local run's output copied into its `run.log` with the known secret values masked.

`python -I -S logmask.py FD MASK` runs beside the training process (in its own session, not inside
the engine), so the log keeps growing while an engine is killed and restarted, and ends when the run's
output does. Whole lines are written as they come (a carriage return ends a line too, for progress bars).
The engine sends the log's path and the secret values through the pipe FD, NUL-separated, never on a command
line or in this process's environment. The script imports nothing but `os` and `sys`, and may be started before
its run is known: it waits for FD, and ends without writing anything when FD closes empty.
"""

from __future__ import annotations

import os
import sys

CHUNK = 1 << 16


def mask(data: bytes, secrets: list[bytes], masked: bytes) -> bytes:
    for value in secrets:
        data = data.replace(value, masked)
    return data


def copy(source: int, sink: int, secrets: list[bytes], masked: bytes) -> None:
    """Copy until end of input, masking every secret, even one that arrives in pieces."""
    pending = b""
    while chunk := os.read(source, CHUNK):
        ready, pending = _split(pending + chunk, secrets, masked)
        _write(sink, ready)
    _write(sink, mask(pending, secrets, masked))


def _write(sink: int, data: bytes) -> None:
    """A full disk costs this part of the log, never the run: reading goes on, so the run is never blocked on its
    output, and the engine reports the full disk itself."""
    try:
        os.write(sink, data)
    except OSError:
        pass


def _split(pending: bytes, secrets: list[bytes], masked: bytes) -> tuple[bytes, bytes]:
    """What can be written now (masked, up to the last line end) and the rest, kept until more comes. A very
    long line is written anyway, except a tail that could be the start of a secret."""
    cut = max(pending.rfind(b"\n"), pending.rfind(b"\r")) + 1
    if cut:
        return mask(pending[:cut], secrets, masked), pending[cut:]
    if len(pending) < CHUNK:
        return b"", pending
    done = mask(pending, secrets, masked)
    hold = max((k for s in secrets for k in range(1, len(s)) if done.endswith(s[:k])), default=0)
    return done[: len(done) - hold], done[len(done) - hold :]


def read_orders(fd: int) -> tuple[bytes, list[bytes]]:
    """The log's path and the values to mask (longest first: one may contain another), NUL-separated on `fd`
    until its end; an empty path when the engine closed `fd` without a run."""
    with os.fdopen(fd, "rb") as source:
        log, *values = source.read().split(b"\0")
    return log, sorted({value for value in values if value}, key=len, reverse=True)


def main(orders_fd: str, masked: str) -> None:
    log, secrets = read_orders(int(orders_fd))
    if not log:
        return
    sink = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        copy(sys.stdin.fileno(), sink, secrets, masked.encode())
    finally:
        os.close(sink)


if __name__ == "__main__":
    main(*sys.argv[1:3])
