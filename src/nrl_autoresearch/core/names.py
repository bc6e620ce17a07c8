"""Experiment names: each becomes one git ref component `<prefix>/<name>` and a folder, so few characters pass."""

from __future__ import annotations

import re

from nrl_autoresearch.core.errors import UsageError

BASELINE = "baseline"
MAX_NAME = 100  # a name is a folder, a ref file and part of run folders: file systems allow 255 bytes
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def validate_name(name: str, *, what: str = "experiment name", reserved: tuple[str, ...] = (BASELINE,)) -> str:
    """An experiment name must be one valid ref component: it becomes `<prefix>/<name>` and a folder name.
    `baseline` is the campaign's reference, run by 'autoresearch baseline', never an experiment."""
    if len(name) > MAX_NAME:
        raise UsageError(
            f"bad {what} {name[:20]!r}...: it has {len(name)} characters; use at most {MAX_NAME} "
            "(it becomes a git branch and a folder)"
        )
    if not _NAME.match(name) or ".." in name or name.endswith((".lock", ".")) or "@{" in name:
        raise UsageError(
            f"bad {what} {name!r}: use letters, digits, '.', '_' and '-', starting with a letter or digit "
            "(it becomes a git branch and a folder)"
        )
    if name in reserved:
        raise UsageError(
            f"bad {what} {name!r}: it is the campaign's reference (run by 'autoresearch baseline'); "
            "give the experiment another name"
        )
    return name


def slugify(text: str, *, limit: int = 48) -> str:
    """A branch-safe name from free text (for proposer hypotheses)."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    slug = re.sub(r"-{2,}", "-", slug)[:limit].strip("-._")
    return slug or "experiment"
