"""How a command refuses: a fault of the machine (exit 1), bad input (exit 2), a stop rule already met (exit 3), a
baseline without a result (exit 4)."""

from __future__ import annotations

import errno


class UsageError(Exception):
    """Bad input: what was wrong, where, and what to do. Raised before anything is created."""

    exit_code = 2


class StopConditionMet(Exception):
    """A stop rule is already met; the message is the stop sentence."""

    exit_code = 3


class BaselineCrashed(Exception):
    """The baseline ran and has no valid metric: nothing can be compared, so nothing else runs. The message is
    the diagnosis (the reason, the likely cause, the log's last lines, what to do)."""

    exit_code = 4


class Fault(Exception):
    """The machine refused (a full disk, another command holding the campaign): what happened, what to do.
    Nothing recorded is lost; the ledger stays consistent."""

    exit_code = 1


def disk_full(err: BaseException) -> bool:
    """A full disk, whether seen directly (ENOSPC) or through a git command's message."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "No space left on device" in str(err) or "Disk quota exceeded" in str(err)


def fault_of(err: BaseException) -> Fault | None:
    """The one-line message an environment failure deserves, or None for anything else."""
    if isinstance(err, Fault):
        return err
    if disk_full(err):
        where = f" writing {err.filename}" if isinstance(err, OSError) and err.filename else ""
        return Fault(
            f"no space left on the disk{where}: free some space, then run 'autoresearch resume' "
            "(every row written so far is intact; the interrupted run is recorded then)"
        )
    return None
