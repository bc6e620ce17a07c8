"""The two ways a command refuses: bad input (exit 2) and a stop rule already met (exit 3)."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input: what was wrong, where, and what to do. Raised before anything is created."""

    exit_code = 2


class StopConditionMet(Exception):
    """A stop rule is already met; the message is the stop sentence."""

    exit_code = 3
