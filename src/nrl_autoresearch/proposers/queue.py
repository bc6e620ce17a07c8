"""`queue:FILE`, directed research ("test these hypotheses"): a YAML or JSON list, run in order.

- name: lr-up
  description: double the learning rate
  set: {policy.optimizer.kwargs.lr: 1.0e-5}
- name: compact-prompt
  parent: best
  patch: patches/compact.diff
"""

from __future__ import annotations

from pathlib import Path

import yaml

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.history import History
from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.core.names import validate_name
from nrl_autoresearch.core.proposer import Proposer, as_text, tried_names

_KEYS = {"name", "description", "parent", "set", "patch", "seed", "repeats"}


class QueueProposer(Proposer):
    name = "queue"

    def __init__(self, path: str):
        self.path = Path(path).resolve()
        self.hypotheses = load_queue(self.path)

    def propose(self, history: History) -> Hypothesis | None:
        done = tried_names(history)
        return next((h for h in self.hypotheses if h.name not in done), None)

    def preview(self, history: History, n: int = 3) -> list[str]:
        done = tried_names(history)
        pending = [h for h in self.hypotheses if h.name not in done]
        return [f"{h.name}: {h.description or h.summary()} (from {h.parent})" for h in pending[:n]]


def load_queue(path: Path) -> list[Hypothesis]:
    """Every entry validated before the campaign starts; a bad entry is named in the error."""
    if not path.is_file():
        raise UsageError(f"queue file {str(path)!r} does not exist")
    try:
        entries = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UsageError(
            f"queue file {str(path)!r} is not valid YAML/JSON{_where(err)}: {getattr(err, 'problem', None) or err}"
        ) from None
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"queue file {str(path)!r} must hold a non-empty list of hypotheses")
    hypotheses: list[Hypothesis] = []
    names: set[str] = set()
    for i, entry in enumerate(entries, start=1):
        h = _entry(entry, i, path, names)
        names.add(h.name)
        hypotheses.append(h)
    return hypotheses


def _where(err: yaml.YAMLError) -> str:
    """' at line L, column C' of a parse error, when the parser knows it."""
    mark = getattr(err, "problem_mark", None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""


def _entry(entry, i: int, path: Path, earlier: set[str]) -> Hypothesis:
    where = f"entry {i} of {path.name}"
    if not isinstance(entry, dict):
        raise UsageError(f"{where} must be a mapping with name, description and set or patch")
    where = f"entry {i} ({entry.get('name', '?')}) of {path.name}"
    unknown = set(entry) - _KEYS
    if unknown:
        raise UsageError(f"{where} has unknown fields {sorted(unknown)}: use {sorted(_KEYS)}")
    if not entry.get("name"):
        raise UsageError(f"{where} has no name")
    name = str(entry["name"])
    try:
        validate_name(name)
    except UsageError as err:
        raise UsageError(f"{where}: {err}") from None
    if name in earlier:
        raise UsageError(f"{where}: the name {name!r} is used twice")
    sets = entry.get("set") or {}
    if not isinstance(sets, dict) or not all(isinstance(k, str) for k in sets):
        raise UsageError(f"{where}: 'set' must map dotted keys to values")
    patch = entry.get("patch")
    if patch is not None:
        patch_path = (path.parent / str(patch)).resolve()
        if not patch_path.is_file():
            raise UsageError(f"{where}: patch file {str(patch)!r} does not exist next to {path.name}")
        patch = str(patch_path)
    if not sets and patch is None:
        raise UsageError(f"{where} changes nothing: give 'set' or 'patch'")
    parent = str(entry.get("parent", "baseline"))
    if parent not in ("baseline", "best") and parent not in earlier:
        raise UsageError(f"{where}: parent {parent!r} must be baseline, best or an earlier entry of the queue")
    seed, repeats = entry.get("seed"), entry.get("repeats")
    if repeats is not None and (not isinstance(repeats, int) or repeats < 1):
        raise UsageError(f"{where}: 'repeats' must be a positive whole number")
    return Hypothesis(
        name=name,
        description=str(entry.get("description", "")),
        parent=parent,
        sets={k: as_text(v) for k, v in sets.items()},
        patch=patch,
        seed=int(seed) if seed is not None else None,
        repeats=repeats,
    )
