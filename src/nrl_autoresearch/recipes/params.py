"""A parameters file the training command reads (YAML, JSON or TOML), edited in place by dotted key.

Round-trip editors keep comments and key order, so the experiment commit is a one-line diff. Every key must
already exist: a typo or an unknown nested key is an error naming the closest keys, never a silent addition.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, MutableMapping, MutableSequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.git import Snapshot

if TYPE_CHECKING:
    from ruamel.yaml import YAML

FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".toml": "toml"}


def parse_value(text: str) -> Any:
    """A command-line value as YAML 1.2 reads it: '1e-6' is a float, 'true' a bool, '[0.9,0.95]' a list, 'null' None."""
    if not isinstance(text, str):
        return text
    try:
        return _yaml().load(text) if text.strip() else text
    except Exception:
        return text


def leaf_paths(node: Any, prefix: str = "") -> list[str]:
    """Every dotted path to a leaf (lists indexed by position), for suggestions."""
    if isinstance(node, MutableMapping):
        items = [(str(k), v) for k, v in node.items()]
    elif isinstance(node, MutableSequence):
        items = [(str(i), v) for i, v in enumerate(node)]
    else:
        return [prefix] if prefix else []
    paths = []
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else key
        paths += leaf_paths(value, path) if isinstance(value, (MutableMapping, MutableSequence)) and value else [path]
    return paths


def closest_keys(key: str, paths: Iterable[str], n: int = 5) -> list[str]:
    """Existing paths a mistyped key most likely meant: similar full paths first, then paths with the same last part."""
    paths = list(paths)
    tail = key.rsplit(".", 1)[-1]
    similar = difflib.get_close_matches(key, paths, n=n, cutoff=0.6)
    same_tail = [p for p in paths if p.rsplit(".", 1)[-1] == tail]
    return list(dict.fromkeys(similar + same_tail))[:n]


def closest_hint(key: str, paths: Iterable[str]) -> str:
    """'; closest existing keys: a, b' or an empty string."""
    matches = closest_keys(key, paths)
    return f"; closest existing keys: {', '.join(matches)}" if matches else ""


def set_path(doc: Any, dotted: str, value: Any, *, where: str) -> None:
    """Set an existing key; unknown keys are a UsageError naming the closest ones."""
    node, parts = doc, dotted.split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, MutableMapping) and part in node:
            if last:
                node[part] = value
                return
            node = node[part]
        elif isinstance(node, MutableSequence) and part.isdigit() and int(part) < len(node):
            if last:
                node[int(part)] = value
                return
            node = node[int(part)]
        else:
            raise UsageError(
                f"unknown key {dotted!r} in {where}{closest_hint(dotted, leaf_paths(doc))}; fix the key or edit the file"
            )


def load_text(name: str, text: str) -> Any:
    """The parsed document; an unreadable file is a UsageError naming it."""
    try:
        return _load(file_format(Path(name)), text)
    except UsageError:
        raise
    except Exception as err:
        raise UsageError(f"cannot parse {name!r}: {err}") from None


def get_path(doc: Any, dotted: str) -> Any:
    node = doc
    for part in dotted.split("."):
        node = node[int(part)] if isinstance(node, MutableSequence) else node[part]
    return node


def values_at(doc: Any, keys: Iterable[str]) -> dict[str, Any]:
    """The values of the dotted keys that exist in the document."""
    found = {}
    for key in keys:
        try:
            found[key] = get_path(doc, key)
        except (KeyError, IndexError, TypeError, ValueError):
            continue
    return found


def directions(value: Any, steps: int = 3) -> tuple[tuple[str, ...], ...]:
    """Generic exploration for one setting: doubling and halving for numbers, the other value for a bool."""
    if isinstance(value, bool):
        return (("false" if value else "true",),)
    if isinstance(value, int) and value >= 2:
        up = tuple(str(value * 2**i) for i in range(1, steps + 1))
        down = tuple(dict.fromkeys(str(max(1, value // 2**i)) for i in range(1, steps + 1)))
        return (up, down)
    if isinstance(value, float) and value > 0:
        return (
            tuple(f"{value * 2**i:g}" for i in range(1, steps + 1)),
            tuple(f"{value / 2**i:g}" for i in range(1, steps + 1)),
        )
    return ()


def edit_file(path: Path, sets: dict[str, str], *, where: str | None = None) -> None:
    """Apply every change to the file, or none: all keys are checked before it is written. Only the changed
    values' lines differ afterwards: the file keeps its layout, comments and key order."""
    where = where or str(path)
    text = path.read_text()
    changes = {key: parse_value(value) for key, value in sets.items()}
    path.write_text(_EDITORS[file_format(path)](text, changes, where))


def _edit_yaml(text: str, changes: dict[str, Any], where: str) -> str:
    from nrl_autoresearch.recipes.yamledit import edit_text

    def edit(doc: Any) -> None:
        for key, value in changes.items():
            set_path(doc, key, value, where=where)

    return edit_text(text, edit)


def _edit_toml(text: str, changes: dict[str, Any], where: str) -> str:
    import tomlkit

    doc = tomlkit.parse(text)
    for key, value in changes.items():
        set_path(doc, key, value, where=where)
    return tomlkit.dumps(doc)


def _edit_json(text: str, changes: dict[str, Any], where: str) -> str:
    """Each value's own characters replaced in the text (located through the parsed structure), nothing else."""
    for key, value in changes.items():
        set_path(json.loads(text), key, value, where=where)  # the key must exist
        start, end = _json_spans(text)[tuple(key.split("."))]
        text = text[:start] + json.dumps(value, ensure_ascii=False) + text[end:]
    return text


def _json_spans(text: str) -> dict[tuple[str, ...], tuple[int, int]]:
    """Where every value of a JSON document lies in its text, by path (list items by position)."""
    decoder = json.JSONDecoder()
    spans: dict[tuple[str, ...], tuple[int, int]] = {}

    def skip(i: int) -> int:
        while text[i] in " \t\r\n":
            i += 1
        return i

    def value(i: int, path: tuple[str, ...]) -> int:
        i = skip(i)
        if text[i] not in "{[":
            end = decoder.raw_decode(text, i)[1]
        else:
            close, end, n = "}" if text[i] == "{" else "]", skip(i + 1), 0
            while text[end] != close:
                if close == "}":
                    key, end = json.decoder.scanstring(text, skip(end) + 1)  # type: ignore[attr-defined]
                    end = skip(end) + 1  # the colon
                else:
                    key, n = str(n), n + 1
                end = skip(value(end, (*path, key)))
                end += text[end] == ","
                end = skip(end)
            end += 1
        spans[path] = (i, end)
        return end

    value(0, ())
    return spans


_EDITORS = {"yaml": _edit_yaml, "json": _edit_json, "toml": _edit_toml}


def check_keys(name: str, text: str, sets: dict[str, str]) -> None:
    """Validate keys against the file's text (as a commit holds it) without writing anything."""
    doc = load_text(name, text)
    for key, value in sets.items():
        set_path(doc, key, parse_value(value), where=name)


def repo_file(root: Path, name: str, snapshot: Snapshot) -> str:
    """`name` as a repository-relative path to a committed, readable file: experiments edit the committed copy
    in their own worktrees, so a file outside the repository or never committed could never be changed."""
    full = (root / name).resolve()
    try:
        rel = full.relative_to(root.resolve()).as_posix()
    except ValueError:
        raise UsageError(f"--params-file {name!r} is outside the repository {root}: give a file inside it") from None
    if not full.is_file():
        raise UsageError(f"--params-file {name!r} does not exist in {root}")
    file_format(full)
    text = snapshot.read_text(rel)
    if text is None:
        raise UsageError(
            f"--params-file {rel!r} is not committed: experiments start from the last commit; "
            f"'git add {rel}' and commit it, then init again"
        )
    load_text(rel, text)
    return rel


def file_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"unsupported params file {str(path)!r}: use a .yaml, .yml, .json or .toml file")
    return fmt


def _yaml() -> YAML:
    """ruamel, imported on first use: commands that only read the ledger never load it."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    return yaml


def _load(fmt: str, text: str) -> Any:
    if fmt == "yaml":
        return _yaml().load(text)
    if fmt == "json":
        return json.loads(text)
    import tomlkit

    return tomlkit.parse(text)
