"""A local run's output copied into its `run.log` with the known secret values masked.

`python -S logmask.py LOG` runs beside the training process (in its own session, not inside
the engine), so the log keeps growing while an engine is killed and restarted, and ends when the run's
output does. Whole lines are written as they come (a carriage return ends a line too, for progress bars).
"""

from __future__ import annotations

import os
import sys

if __package__:
    from nrl_autoresearch.core.redact import MASK, secret_values
else:  # run as a script (python -S logmask.py LOG), without the package's dependencies: core/redact.py alone
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "core"))
    from redact import MASK, secret_values  # type: ignore[import-not-found, no-redef]

CHUNK = 1 << 16


def mask(data: bytes, secrets: list[bytes]) -> bytes:
    for value in secrets:
        data = data.replace(value, MASK.encode())
    return data


def copy(source: int, sink: int, secrets: list[bytes]) -> None:
    """Copy until end of input, masking every secret, even one that arrives in pieces."""
    pending = b""
    while chunk := os.read(source, CHUNK):
        ready, pending = _split(pending + chunk, secrets)
        _write(sink, ready)
    _write(sink, mask(pending, secrets))


def _write(sink: int, data: bytes) -> None:
    """A full disk costs this part of the log, never the run: reading goes on, so the run is never blocked on its
    output, and the engine reports the full disk itself."""
    try:
        os.write(sink, data)
    except OSError:
        pass


def _split(pending: bytes, secrets: list[bytes]) -> tuple[bytes, bytes]:
    """What can be written now (masked, up to the last line end) and the rest, kept until more comes. A very
    long line is written anyway, except a tail that could be the start of a secret."""
    cut = max(pending.rfind(b"\n"), pending.rfind(b"\r")) + 1
    if cut:
        return mask(pending[:cut], secrets), pending[cut:]
    if len(pending) < CHUNK:
        return b"", pending
    masked = mask(pending, secrets)
    hold = max((k for s in secrets for k in range(1, len(s)) if masked.endswith(s[:k])), default=0)
    return masked[: len(masked) - hold], masked[len(masked) - hold :]


def main(log: str) -> None:
    sink = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        copy(sys.stdin.fileno(), sink, [v.encode() for v in secret_values()])
    finally:
        os.close(sink)


if __name__ == "__main__":
    main(sys.argv[1])
