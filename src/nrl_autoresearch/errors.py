"""How a command refuses: bad input (exit 2), a stop rule already met (exit 3), a baseline without a result (exit 4)."""

from __future__ import annotations


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
