"""Launchers, by the name given to --launcher. A new backend is one file and one line here."""

from __future__ import annotations

from ..errors import UsageError
from .base import Launcher
from .local import LocalLauncher

LAUNCHERS: dict[str, type[Launcher]] = {
    "local": LocalLauncher,
}


def make_launcher(config: dict) -> Launcher:
    """Build the launcher a campaign names, with its options."""
    name = config.get("name", "local")
    if name not in LAUNCHERS:
        raise UsageError(f"unknown --launcher {name!r}: use one of {', '.join(LAUNCHERS)}")
    return LAUNCHERS[name](**{k: v for k, v in config.items() if k != "name"})
