"""Hypotheses as edits to a NeMo-RL recipe file, so that an experiment's commit is the recipe change itself.

Keys are checked against the composed recipe (parents included) and written into the recipe file; a key only a
parent sets is added to the file at its place. Keys NeMo-RL reads together change together: hard-coded sequence
lengths follow `policy.max_total_sequence_length`, and the DTensor and Megatron learning rates move as one when
Megatron is the active backend. The file keeps its comments, key order, quoting and layout: the edit is made by
ruamel.yaml, then only the lines it changed are carried over to the original text.
"""

from __future__ import annotations

import difflib
import io
import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, ScalarString

from nrl_autoresearch.core.durable import replace_text
from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.recipes.nemo_config import (
    PathLike,
    composed,
    dotted_leaf_paths,
    get_dotted,
    has_dotted,
    read_yaml,
    resolved_value,
)
from nrl_autoresearch.recipes.params import closest_keys

__all__ = ["dotted_leaf_paths", "format_value", "parse_value", "set_keys"]

SEQUENCE_LENGTH = "policy.max_total_sequence_length"
# Lengths NeMo-RL derives from SEQUENCE_LENGTH by interpolation in its base configs, but many recipes hard-code.
SEQUENCE_FOLLOWERS = (
    "policy.generation.max_new_tokens",
    "policy.generation.vllm_cfg.max_model_len",
    "data.max_input_seq_length",
    "grpo.reward_shaping.max_response_length",
)
DTENSOR_LR = "policy.optimizer.kwargs.lr"
MEGATRON_LR = "policy.megatron_cfg.optimizer.lr"
MEGATRON_MIN_LR = "policy.megatron_cfg.optimizer.min_lr"
MEGATRON_ENABLED = "policy.megatron_cfg.enabled"

_ABSENT: Any = object()


@dataclass(frozen=True)
class _Change:
    key: str
    old: Any
    new: Any
    because: str = ""

    def describe(self) -> str:
        line = f"{self.key}: {format_value(self.old)} -> {format_value(self.new)}"
        return f"{line} ({self.because})" if self.because else line


def set_keys(recipe_path: PathLike, changes: Mapping[str, Any]) -> list[str]:
    """Set dotted keys in the recipe file, in place. String values are read as YAML (`"5e-6"` is a float).

    Returns one line per key actually changed, coupled keys included, each `"<key>: <old> -> <new>"` with the
    reason appended for coupled keys; values already in place are not rewritten. Nothing is written when any key
    is unknown (UsageError naming the closest existing keys) or a value cannot apply."""
    path = Path(recipe_path)
    merged = composed(path)
    requested = {key: parse_value(value) if isinstance(value, str) else value for key, value in changes.items()}
    for key, value in requested.items():
        _check_key(path, merged, key, value)
    planned = [c for c in _plan(merged, requested) if not _same(c.old, c.new)]
    if planned:
        _write(path, merged, planned)
    return [change.describe() for change in planned]


def parse_value(text: str) -> Any:
    """A command-line value as NeMo-RL will read it back from the YAML file: `1e-6` a float, `true` a bool,
    `[0.9,0.95]` a list, `null` None. Text that is not a YAML scalar or flow collection stays a string."""
    if not text.strip():
        return text
    try:
        value = read_yaml(text)
    except Exception:  # any YAML error: the text is meant literally
        return text
    if isinstance(value, (dict, list)) and not text.lstrip().startswith(("[", "{")):
        return text
    return value


def format_value(value: Any) -> str:
    """A value as one line of YAML flow text, for change descriptions (`1e-06`, `null`, `[0.9, 0.95]`)."""
    if isinstance(value, str):
        return value if _reads_back(value) else json.dumps(value)
    return json.dumps(value)


def _reads_back(text: str) -> bool:
    """Whether `text` written as a plain YAML scalar is read back as the same string."""
    try:
        return read_yaml(text) == text
    except Exception:  # not valid as a plain scalar
        return False


def _same(old: Any, new: Any) -> bool:
    return old == new and isinstance(old, bool) == isinstance(new, bool)


# ---------------------------------------------------------------------------------------------------------------
# Validation and coupling
# ---------------------------------------------------------------------------------------------------------------


def _check_key(path: Path, merged: dict[str, Any], key: str, value: Any) -> None:
    if not has_dotted(merged, key):
        matches = closest_keys(key, dotted_leaf_paths(merged))
        hint = f"; closest existing keys: {', '.join(matches)}" if matches else ""
        raise UsageError(
            f"no key {key!r} in recipe {path} (its parents included){hint}; "
            "fix the key (only keys the recipe already has can be set)"
        )
    old = get_dotted(merged, key)
    if isinstance(value, str) and isinstance(old, (int, float)) and not isinstance(old, bool):
        raise UsageError(f"{key} in recipe {path} is a number ({old}), not {value!r}; give a number")


def _plan(merged: dict[str, Any], requested: dict[str, Any]) -> list[_Change]:
    """The requested changes, then the keys they carry along."""
    changes = [_Change(key, get_dotted(merged, key), value) for key, value in requested.items()]
    changes += _sequence_followers(merged, requested)
    lr_changes = _lr_followers(merged, requested)
    return changes + lr_changes + _min_lr_follower(merged, requested, changes + lr_changes)


def _sequence_followers(merged: dict[str, Any], requested: dict[str, Any]) -> list[_Change]:
    """Hard-coded lengths that tracked the old total (equal to it) follow the new one; others are independent
    budgets (DAPO recipes keep `max_new_tokens` below the total and cap prompts), capped at the new total."""
    if SEQUENCE_LENGTH not in requested:
        return []
    new_total, old_total = requested[SEQUENCE_LENGTH], resolved_value(merged, SEQUENCE_LENGTH)
    if not isinstance(new_total, int) or isinstance(new_total, bool):
        raise UsageError(f"{SEQUENCE_LENGTH} must be an integer number of tokens, not {new_total!r}")
    followers = []
    for key in SEQUENCE_FOLLOWERS:
        value = get_dotted(merged, key, _ABSENT)
        if key in requested or not isinstance(value, int) or isinstance(value, bool):
            continue  # absent, null or an interpolation: nothing hard-coded to move
        if value == old_total or value > new_total:
            reason = "tracked" if value == old_total else "capped at"
            followers.append(_Change(key, value, new_total, f"hard-coded; {reason} {SEQUENCE_LENGTH}"))
    return followers


def _lr_followers(merged: dict[str, Any], requested: dict[str, Any]) -> list[_Change]:
    """With Megatron active, NeMo-RL reads the Megatron LR; the DTensor one is kept equal so neither goes stale."""
    if resolved_value(merged, MEGATRON_ENABLED) is not True:
        return []
    followers = []
    for source, target in ((DTENSOR_LR, MEGATRON_LR), (MEGATRON_LR, DTENSOR_LR)):
        if source in requested and target not in requested and has_dotted(merged, target):
            followers.append(
                _Change(
                    target,
                    get_dotted(merged, target),
                    requested[source],
                    f"kept equal to {source}; Megatron is enabled",
                )
            )
    return followers


def _min_lr_follower(merged: dict[str, Any], requested: dict[str, Any], changes: list[_Change]) -> list[_Change]:
    """A literal Megatron `min_lr` scales with the Megatron LR, keeping the schedule's shape."""
    new_lr = next((c.new for c in changes if c.key == MEGATRON_LR), None)
    old_lr, old_min = resolved_value(merged, MEGATRON_LR), get_dotted(merged, MEGATRON_MIN_LR, _ABSENT)
    numbers = (new_lr, old_lr, old_min)
    if MEGATRON_MIN_LR in requested or not all(isinstance(n, (int, float)) for n in numbers) or not old_lr:
        return []
    return [_Change(MEGATRON_MIN_LR, old_min, float(f"{old_min * new_lr / old_lr:.12g}"), f"scaled with {MEGATRON_LR}")]


# ---------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------


class _Representer(RoundTripRepresenter):
    """Writes None as `null`, as NeMo-RL's files do, instead of an empty value."""


_Representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))


def _write(path: Path, merged: dict[str, Any], changes: list[_Change]) -> None:
    original = path.read_text(encoding="utf-8")

    def edit(doc: CommentedMap) -> None:
        for change in changes:
            _set_in_document(doc, merged, change.key, change.new)

    replace_text(path, edit_text(original, edit))
    _verify(path, original, changes)


def edit_text(original: str, edit: Callable[[Any], None]) -> str:
    """The YAML text with `edit` applied to its round-trip document, where only the lines the edit changed differ
    from the original: comments, quoting, indentation and long lines stay as written."""
    text = original if original.endswith("\n") else original + "\n"
    rt = _round_trip(text)
    doc = rt.load(text) or CommentedMap()
    baseline = _dump(rt, doc)
    edit(doc)
    return _carry_over(text, baseline, _dump(rt, doc))


def _round_trip(text: str) -> YAML:
    rt = YAML()
    rt.Representer = _Representer
    rt.preserve_quotes = True
    rt.width = 4096  # never fold long values onto a second line
    mapping, offset = _indentation(text)
    rt.indent(mapping=mapping, sequence=offset + 2, offset=offset)
    return rt


def _indentation(text: str) -> tuple[int, int]:
    """The file's mapping indent and the offset of `- ` under a key, from its first nested lines (else 2 and 0)."""
    mapping = offset = None
    parent: tuple[int, str] | None = None
    for line in text.splitlines():
        content = line.split(" #", 1)[0].rstrip()
        if not content.strip() or content.lstrip().startswith("#"):
            continue
        indent = len(content) - len(content.lstrip(" "))
        if parent and parent[1].endswith(":") and indent > parent[0]:
            if content.lstrip().startswith("- "):
                offset = indent - parent[0] if offset is None else offset
            elif mapping is None:
                mapping = indent - parent[0]
        parent = (indent, content)
    return mapping or 2, offset or 0


def _dump(rt: YAML, doc: Any) -> str:
    out = io.StringIO()
    rt.dump(doc, out)
    return out.getvalue()


def _set_in_document(doc: CommentedMap, merged: dict[str, Any], key: str, value: Any) -> None:
    """Set `key` in the recipe file's own document, adding the maps on its path that only parents have. A list only
    a parent has is copied whole first: lists replace, they do not merge."""
    parts = key.split(".")
    node: Any = doc
    for depth, part in enumerate(parts[:-1]):
        child = _child(node, part)
        if not isinstance(child, (Mapping, list)):  # absent here, or a `???` placeholder
            inherited = get_dotted(merged, ".".join(parts[: depth + 1]))
            child = _collection(inherited) if isinstance(inherited, list) else CommentedMap()
            node[part] = child
        node = child
    last = int(parts[-1]) if isinstance(node, list) else parts[-1]
    node[last] = _styled(_child(node, parts[-1]), value)


def _child(node: Any, part: str) -> Any:
    if isinstance(node, list):
        return node[int(part)] if part.isdigit() and int(part) < len(node) else _ABSENT
    return node.get(part, _ABSENT) if isinstance(node, Mapping) else _ABSENT


def _styled(old: Any, value: Any) -> Any:
    """`value` dressed like the value it replaces: same quotes for a string, block style kept for a collection that
    was written as a block; strings YAML would read as something else get quoted."""
    if isinstance(value, str):
        if isinstance(old, ScalarString) and not isinstance(value, ScalarString):
            return type(old)(value)
        return value if _reads_back(value) else DoubleQuotedScalarString(value)
    node = _collection(value, flow_maps=True)
    if (
        isinstance(node, (CommentedMap, CommentedSeq))
        and isinstance(old, (CommentedMap, CommentedSeq))
        and not old.fa.flow_style()
    ):
        node.fa.set_block_style()
    return node


def _collection(value: Any, flow_maps: bool = False) -> Any:
    """Plain data as ruamel nodes: lists of scalars in flow style (`[0.9, 0.95]`), maps as blocks unless
    `flow_maps` and they hold only scalars."""
    if isinstance(value, Mapping):
        node: Any = CommentedMap((key, _collection(item)) for key, item in value.items())
    elif isinstance(value, list):
        node = CommentedSeq(_collection(item) for item in value)
    else:
        return _styled(_ABSENT, value) if isinstance(value, str) else value
    nested = any(isinstance(item, (Mapping, list)) for item in (node.values() if isinstance(node, Mapping) else node))
    if not nested and (flow_maps or isinstance(node, list) or not node):
        node.fa.set_flow_style()
    return node


def _carry_over(original: str, baseline: str, edited: str) -> str:
    """Apply the lines ruamel changed (baseline -> edited, both its dumps) to the original text, so that lines it
    would only re-format (`False` case, flow-list spacing, folded scalars, trailing spaces) stay as written. Falls
    back to ruamel's dump when the mapping between original and dump is ambiguous."""
    old_lines, base_lines, new_lines = (t.splitlines(keepends=True) for t in (original, baseline, edited))
    spans = _spans(old_lines, base_lines)
    edits = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, base_lines, new_lines, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        start = spans[i1][0] if i1 < len(base_lines) else len(old_lines)
        end = spans[i2 - 1][1] if i2 > i1 else start
        edits.append((start, end, new_lines[j1:j2]))
    if any(a[1] > b[0] for a, b in itertools.pairwise(edits)):
        return edited
    patched = list(old_lines)
    for start, end, lines in reversed(edits):
        patched[start:end] = lines
    result = "".join(patched)
    return result if _reads_as(result, read_yaml(edited)) else edited


def _reads_as(text: str, expected: Any) -> bool:
    """Whether the patched text is valid YAML with the edited content (a splice can break a block's layout)."""
    try:
        return read_yaml(text) == expected
    except Exception:  # any YAML error: the splice is unusable
        return False


def _spans(old_lines: list[str], base_lines: list[str]) -> list[tuple[int, int]]:
    """For each line of ruamel's dump, the range of original lines it stands for."""
    spans: list[tuple[int, int]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old_lines, base_lines, autojunk=False).get_opcodes():
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            spans += [(i1 + k, i1 + k + 1) for k in range(j2 - j1)]
        elif j2 > j1:
            spans += [(i1, i2)] * (j2 - j1)
    return spans


def _verify(path: Path, original: str, changes: list[_Change]) -> None:
    """Reload the recipe and check every change took effect; restore the file when one did not."""
    merged = composed(path)
    wrong = [c.key for c in changes if not _same(get_dotted(merged, c.key, _ABSENT), c.new)]
    if wrong:
        replace_text(path, original)
        raise UsageError(
            f"editing {path} did not change {', '.join(wrong)} in the composed recipe (the file is "
            "restored); set these keys in the file that defines them, or pass them as overrides"
        )
