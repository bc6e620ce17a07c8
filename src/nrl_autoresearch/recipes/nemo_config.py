"""NeMo-RL recipes read exactly as NeMo-RL's own loader reads them, and the facts the engine takes from them.

NeMo-RL (`nemo_rl/utils/config.py`) composes a recipe from plain YAML files: a top-level `defaults:` names parent
files (one path or a list, relative to the file naming them); parents merge left to right, then the file itself;
a top-level section carrying `_override_: true` replaces the inherited section instead of deep-merging. Command-line
overrides use Hydra's grammar in struct mode. Anything else here (entrypoint, algorithm, objective, GPUs, files,
environment variables) is derived from the composed recipe, because the YAML never names its entrypoint.

Building OmegaConf nodes is what makes composing and resolving slow, so files are composed as plain containers
(cached per file) and only the interpolated part of a recipe goes through OmegaConf to be resolved; the results
are OmegaConf's own, and resolving every config NeMo-RL ships takes seconds instead of a minute.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf._utils import get_yaml_loader
from omegaconf.errors import InterpolationResolutionError, OmegaConfBaseException
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.metrics.nemo_rl import metric_tag
from nrl_autoresearch.recipes.params import closest_hint

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override

PathLike = str | os.PathLike[str]

_RESOLVERS = {
    "add": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "max": lambda a, b: max(a, b),
}


def register_resolvers() -> None:
    """Register NeMo-RL's `${add:..}`, `${mul:..}`, `${div:..}`, `${max:..}`; leaves existing registrations alone."""
    for name, fn in _RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_resolvers()

# ---------------------------------------------------------------------------------------------------------------
# Loading with inheritance
# ---------------------------------------------------------------------------------------------------------------

_Version = tuple[int, int, int]  # inode, mtime, size: a rewrite through a new file is seen even within one tick
_Stamp = tuple[tuple[Path, _Version], ...]
_ABSENT: Any = object()
_MISSING = "???"
_REFERENCE_BODY = r"(\.*)([\w\-]+(?:\.[\w\-]+)*)\}"
_REFERENCE = re.compile(r"\$\{" + _REFERENCE_BODY)  # `${a.b}`, `${..c}`, alone or inside a resolver call
_PURE_REFERENCE = re.compile(r"^\$\{" + _REFERENCE_BODY + "$")
_SCALAR_INTERPOLATION = re.compile(r"^\$\{(?:add|mul|div|max|oc\.env):")
_NUMBER_ARG = r"\s*(\$\{\.*[\w\-]+(?:\.[\w\-]+)*\}|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?)\s*"
_ARITHMETIC = re.compile(r"^\$\{(add|mul|div|max):" + _NUMBER_ARG + "," + _NUMBER_ARG + r"\}$")
_UNKNOWN_INTERPOLATION = re.compile(r"\$\{(?!(?:add|mul|div|max|oc\.env):)(?!" + _REFERENCE_BODY + ")")


@dataclass(frozen=True)
class _Layer:
    """A file composed with all its parents, as plain containers never mutated once cached; `stamp` lists every file
    of the chain with its version."""

    tree: dict[str, Any]
    stamp: _Stamp


_PARSED: dict[Path, tuple[_Version, dict[str, Any]]] = {}
_COMPOSED: OrderedDict[Path, _Layer] = OrderedDict()
_COMPOSED_MAX = 256


def load_recipe(path: PathLike) -> DictConfig:
    """The recipe composed with its `defaults:` chain: what NeMo-RL's `load_config` returns (a fresh object).

    Composition runs on plain containers with OmegaConf's merge rules, so only the result is turned into a
    DictConfig: building and deep-copying DictConfigs is what makes a naive loader slow."""
    return OmegaConf.create(_compose(_absolute(path), ()).tree)


def composed(path: PathLike) -> dict[str, Any]:
    """`OmegaConf.to_container(load_recipe(path), resolve=False)` without building OmegaConf nodes: a fresh copy."""
    return cast("dict[str, Any]", _copy(_compose(_absolute(path), ()).tree))


def resolved_value(tree: dict[str, Any], key: str) -> Any:
    """One key's resolved value without resolving the rest (other keys may need unset environment variables), or
    None. A plain scalar is its own value; only an interpolated or missing one needs OmegaConf's nodes built."""
    value = _lookup(tree, key)
    if not isinstance(value, (dict, list, str)) and value is not _ABSENT:
        return value
    if isinstance(value, str) and "${" not in value and value != _MISSING:
        return value
    return OmegaConf.select(OmegaConf.create(tree), key, default=None, throw_on_resolution_failure=False)


def inheritance_chain(path: PathLike) -> list[Path]:
    """The recipe file and every file it inherits from, depth first, each once."""
    return list(dict.fromkeys(entry[0] for entry in _compose(_absolute(path), ()).stamp))


def _absolute(path: PathLike) -> Path:
    return Path(os.path.abspath(path))


def _parse(path: Path, named_by: Path | None) -> tuple[_Version, dict[str, Any]]:
    """The file as OmegaConf.load would read it, cached by version; the cached tree is shared, never mutated."""
    try:
        st = path.stat()
    except OSError:
        where = f"named in `defaults:` of {named_by}" if named_by else "given as the recipe"
        raise UsageError(
            f"recipe file {path} ({where}) does not exist; fix the path "
            "(`defaults:` paths are relative to the file that names them)"
        ) from None
    version = (st.st_ino, st.st_mtime_ns, st.st_size)
    hit = _PARSED.get(path)
    if hit and hit[0] == version:
        return hit
    try:
        tree = read_yaml(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UsageError(f"recipe file {path} is not valid YAML: {exc}; fix the file") from exc
    tree = {} if tree is None else tree
    if not isinstance(tree, dict):
        raise UsageError(f"recipe file {path} must be a YAML mapping at the top level; fix the file")
    _PARSED[path] = (version, tree)
    return version, tree


def _yaml_loader() -> type:
    """OmegaConf.load's own loader class (`1e-6` a float, no timestamps, duplicate keys refused), parsing with
    libyaml when PyYAML has it: the same trees, several times faster."""
    omegaconf_loader = get_yaml_loader()
    if not yaml.__with_libyaml__:
        return omegaconf_loader
    from yaml.cyaml import CParser  # type: ignore[attr-defined]  # PyYAML exports it, its stubs do not

    class Loader(CParser, omegaconf_loader):  # type: ignore[valid-type, misc]  # a class chosen at run time
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    return Loader


_YAML_LOADER = _yaml_loader()


def read_yaml(text: str) -> Any:
    """YAML text as OmegaConf.load reads it."""
    return yaml.load(text, Loader=_YAML_LOADER)


def _parent_paths(path: Path, raw: dict[str, Any]) -> list[Path]:
    """The files named by `defaults:`, resolved against the directory of `path` (absolute paths kept)."""
    named = raw["defaults"]
    if isinstance(named, str):
        named = [named]
    elif isinstance(named, list):
        named = [str(item) for item in named]
    else:
        raise UsageError(
            f"`defaults:` in {path} must be a file path or a list of file paths, not {named!r}; fix the file"
        )
    return [_absolute(item if item.startswith("/") else path.parent / item) for item in named]


def _compose(path: Path, visiting: tuple[Path, ...], named_by: Path | None = None) -> _Layer:
    if path in visiting:
        cycle = " -> ".join(str(p) for p in (*visiting, path))
        raise UsageError(f"`defaults:` chain loops: {cycle}; remove one of these `defaults:` entries")
    version, raw = _parse(path, named_by)
    has_defaults = "defaults" in raw
    parents = [_compose(p, (*visiting, path), path) for p in _parent_paths(path, raw)] if has_defaults else []
    stamp = ((path, version), *(entry for parent in parents for entry in parent.stamp))
    hit = _COMPOSED.get(path)
    if hit and hit.stamp == stamp:
        _COMPOSED.move_to_end(path)
        return hit
    tree = raw
    if has_defaults:
        _check_top_level_interpolations(path, {k: v for k, v in raw.items() if k != "defaults"})
        base: dict[str, Any] = {}
        for parent in parents:
            base = merge_layer(base, parent.tree)
        tree = merge_layer(base, {k: v for k, v in raw.items() if k != "defaults"})
    layer = _Layer(tree, stamp)
    _COMPOSED[path] = layer
    if len(_COMPOSED) > _COMPOSED_MAX:
        _COMPOSED.popitem(last=False)
    return layer


def _check_top_level_interpolations(path: Path, child: dict[str, Any]) -> None:
    """NeMo-RL's merge reads every top-level value of a file with `defaults:` on its own, before the merge: an
    interpolation there resolves against that file alone, so one into a key only a parent defines fails."""
    interpolated = [k for k, v in child.items() if isinstance(v, str) and "${" in v]
    if not interpolated:
        return
    register_resolvers()
    alone = OmegaConf.create(child)
    for key in interpolated:
        try:
            alone[key]
        except OmegaConfBaseException as exc:
            raise UsageError(
                f"{path}: top-level {key}: {child[key]} fails in NeMo-RL's loader, which resolves it "
                f"before merging the parents ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                "move it under a section or repeat the key it names in this file"
            ) from None


def merge_layer(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """NeMo-RL's `merge_with_override` on plain containers: `OmegaConf.merge(base, child)`, except that a top-level
    section of `child` marked `_override_: true` replaces the same section of `base` (marker dropped). Only top-level
    sections are checked, as in NeMo-RL. Returns a new tree; neither argument is modified."""
    replaced = {key for key, value in child.items() if isinstance(value, dict) and value.get("_override_", False)}
    if replaced:
        base = {k: v for k, v in base.items() if k not in replaced}
        child = {
            k: ({kk: vv for kk, vv in v.items() if kk != "_override_"} if k in replaced else v)
            for k, v in child.items()
        }
    merged = _copy(base)
    try:
        _merge_into(merged, child, merged, ())
    except _DereferenceNeeded:
        merged = OmegaConf.to_container(OmegaConf.merge(base, child), resolve=False)
    return merged


class _DereferenceNeeded(Exception):
    """OmegaConf.merge would first replace an interpolation with the container it points to (rare): let it merge."""


def _merge_into(dest: dict[str, Any], src: dict[str, Any], root: dict[str, Any], where: tuple[str, ...]) -> None:
    """OmegaConf's merge rules for untyped configs: maps merge key by key, anything else replaces, `???` in `src`
    never replaces a value."""
    for key, value in src.items():
        current = dest.get(key, _ABSENT)
        if isinstance(current, str) and _may_dereference_to_container(current, root, where):
            raise _DereferenceNeeded
        if value == _MISSING:
            dest.setdefault(key, value)
        elif isinstance(value, dict) and isinstance(current, dict):
            _merge_into(current, value, root, (*where, str(key)))
        else:
            dest[key] = _copy(value)


def _may_dereference_to_container(text: str, root: dict[str, Any], where: tuple[str, ...]) -> bool:
    """Whether `text` is an interpolation that might resolve to a map or list (a reference to one, or anything
    unusual); references to scalars and the scalar resolvers NeMo-RL uses are known not to."""
    if not (text.startswith("${") and text.endswith("}")) or _SCALAR_INTERPOLATION.match(text):
        return False
    reference = _PURE_REFERENCE.match(text)
    if reference is None:
        return True
    dots, key = reference.groups()
    anchor = where[: len(where) - len(dots) + 1] if dots else ()
    target = _lookup(root, ".".join((*anchor, key)))
    return isinstance(target, (dict, list)) or (isinstance(target, str) and "${" in target)


def _copy(node: Any) -> Any:
    """A deep copy of plain YAML data (YAML anchors become independent copies, as in OmegaConf)."""
    if isinstance(node, dict):
        return {key: _copy(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_copy(value) for value in node]
    return node


# ---------------------------------------------------------------------------------------------------------------
# Overrides and resolution
# ---------------------------------------------------------------------------------------------------------------

_GRAMMAR = "Hydra override syntax: key=value (existing key), +key=value (new key), ++key=value (either), ~key (delete)"


def apply_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """Apply Hydra override strings the way NeMo-RL's entrypoints do (struct mode on, Hydra's own applier), one at a
    time so an error names the override at fault. Modifies and returns `cfg`. Hydra is imported here only: most
    commands never apply an override, and importing it costs a large part of a command's start."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser

    OmegaConf.set_struct(cfg, True)
    parser = OverridesParser.create()
    for text in overrides:
        try:
            parsed = parser.parse_overrides(overrides=[text])
        except Exception as exc:  # hydra raises OverrideParseException and grammar errors
            raise UsageError(f"cannot parse override {text!r}: {exc}; use {_GRAMMAR}") from exc
        try:
            ConfigLoaderImpl._apply_overrides_to_config(overrides=parsed, cfg=cfg)
        except Exception as exc:  # hydra's ConfigCompositionException wraps OmegaConf's errors
            raise UsageError(_override_failure(cfg, parsed[0], exc)) from exc
    return cfg


def _override_failure(cfg: DictConfig, override: Override, exc: Exception) -> str:
    """Hydra's message, the underlying OmegaConf reason, and a hint that names real keys."""
    key = override.key_or_group
    reason = f" ({str(exc.__cause__).splitlines()[0]})" if exc.__cause__ else ""
    message = f"override {override.input_line!r} failed: {str(exc).strip()}{reason}"
    current = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_resolution_failure=False)
    if current is _ABSENT:
        hint = closest_hint(key, dotted_leaf_paths(cfg))
        message = re.sub(r"\.?\s*To append to your config use \+\S+", "", message)  # a typo's key would be dead
        return f"{message}\nNo key {key!r} in the recipe{hint}: a key the recipe lacks is most likely read by nothing, so check its spelling"
    if override.is_delete():
        return f"{message}\n`~` only deletes a key whose value is not null; to clear it use {key}=null"
    if override.is_add():
        return message
    return f"{message}\nThe recipe's current value of {key} is {current!r}; give a value of that shape"


def resolve(cfg: DictConfig, recipe: PathLike | None = None) -> dict[str, Any]:
    """`OmegaConf.to_container(cfg, resolve=True)` as the entrypoints do; a missing environment variable or a broken
    interpolation becomes a UsageError naming it, the key that uses it and `recipe` when given."""
    tree = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(tree, dict)
    return _resolve_tree(cast("dict[str, Any]", tree), recipe)


def load_resolved(path: PathLike, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """What an entrypoint sees for `--config path overrides...`: load, apply overrides, resolve."""
    if overrides:
        resolved = resolve(apply_overrides(load_recipe(path), overrides), path)
    else:
        resolved = _resolve_tree(_compose(_absolute(path), ()).tree, path)
    _check_key_types(resolved, (), path)
    return resolved


def _check_key_types(node: Any, where: tuple[str, ...], recipe: PathLike) -> None:
    """One level with keys of several types (YAML 1.1 reads a bare `off:`, `on:`, `yes:`, `no:` as a boolean) cannot
    be addressed by dotted keys nor sorted: say so once, where it is, instead of failing later on a comparison."""
    if not isinstance(node, Mapping):
        return
    kinds = {type(k).__name__ for k in node}
    if len(kinds) > 1:
        odd = ", ".join(repr(k) for k in node if not isinstance(k, str))
        at = ".".join(where) or "the top level"
        raise UsageError(
            f"{recipe}: {at} mixes key types ({', '.join(sorted(kinds))}): {odd} - a bare off/on/yes/no "
            'key is read as a boolean; quote it ("off":)'
        )
    for key, child in node.items():
        _check_key_types(child, (*where, str(key)), recipe)


def _resolve_tree(tree: dict[str, Any], recipe: PathLike | None) -> dict[str, Any]:
    """Resolve a plain tree as OmegaConf does. References to plain values (most of NeMo-RL's interpolations) are
    copied here; OmegaConf gets only the other interpolated values and everything they reference: the result is the
    same, and most of the cost of resolving (building nodes, parsing each interpolation) is avoided."""
    register_resolvers()
    result = _copy(tree)
    interpolated = _settle_references(result, list(_interpolations(result, ())))
    if not interpolated:
        return result
    needed = _referenced(result, interpolated)
    part = _prune(result, needed) if needed is not None else result
    try:
        resolved = cast("dict[str, Any]", OmegaConf.to_container(OmegaConf.create(part), resolve=True))
    except InterpolationResolutionError as exc:
        raise UsageError(_resolution_failure(exc, recipe)) from exc
    if needed is None:
        return resolved
    for path, _ in interpolated:
        _set_at(result, path, _walk(resolved, path))
    return result


def _settle_references(tree: dict[str, Any], interpolated: list[tuple[_Path, str]]) -> list[tuple[_Path, str]]:
    """Replace in `tree` each value that is a reference alone (`${a.b}`, `${..c}`) to a plain value (a number, a
    bool, null, a string without interpolation, not `???`) by that value, as OmegaConf resolves it, until none is
    left (a reference to a reference settles once its target has); returns the interpolations still to resolve."""
    pending = interpolated
    while True:
        left = [(path, text) for path, text in pending if not _settled(tree, path, text)]
        if len(left) == len(pending):
            return left
        pending = left


def _settled(tree: dict[str, Any], path: _Path, text: str) -> bool:
    reference = _PURE_REFERENCE.match(text)
    if reference is not None:
        value = _walk(tree, _target(path, *reference.groups()))
        if (
            isinstance(value, (dict, list))
            or value is _ABSENT
            or (isinstance(value, str) and ("${" in value or value == _MISSING))
        ):
            return False
    else:
        value = _arithmetic(tree, path, text)
        if value is _ABSENT:
            return False
    _set_at(tree, path, value)
    return True


def _arithmetic(tree: dict[str, Any], path: _Path, text: str) -> Any:
    """`${mul:${a.b}, 2}`: one of NeMo-RL's resolvers on two numbers, each a decimal literal or a reference to a
    number, computed as OmegaConf calls the resolver; _ABSENT for anything else (left to OmegaConf)."""
    call = _ARITHMETIC.match(text)
    if call is None:
        return _ABSENT
    name, *args = call.groups()
    values = [_number(tree, path, arg) for arg in args]
    if any(value is _ABSENT for value in values):
        return _ABSENT
    try:
        return _RESOLVERS[name](*values)
    except ArithmeticError:
        return _ABSENT


def _number(tree: dict[str, Any], path: _Path, arg: str) -> Any:
    reference = _PURE_REFERENCE.match(arg)
    if reference is None:
        return float(arg) if "." in arg else int(arg)
    value = _walk(tree, _target(path, *reference.groups()))
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else _ABSENT


def _target(path: _Path, dots: str, key: str) -> _Path:
    """Where a reference written at `path` points: `${a.b}` from the root, `${.b}` beside it, `${..b}` a level up."""
    return (*path[: len(path) - len(dots)], *key.split(".")) if dots else tuple(key.split("."))


_Path = tuple[Any, ...]  # map keys and list positions


def _interpolations(node: Any, path: _Path) -> Iterator[tuple[_Path, str]]:
    if isinstance(node, (dict, list)):
        for key, value in node.items() if isinstance(node, dict) else enumerate(node):
            yield from _interpolations(value, (*path, key))
    elif isinstance(node, str) and "${" in node:
        yield path, node


def _referenced(tree: dict[str, Any], interpolated: list[tuple[_Path, str]]) -> set[_Path] | None:
    """Paths of the interpolated values and, transitively, of everything they reference; None when an interpolation
    is beyond plain references and NeMo-RL's resolvers, or a reference does not resolve here (OmegaConf then sees the
    whole tree and decides)."""
    needed = {path for path, _ in interpolated}
    pending = list(interpolated)
    while pending:
        path, text = pending.pop()
        if _UNKNOWN_INTERPOLATION.search(text):
            return None
        for dots, key in _REFERENCE.findall(text):
            target = _target(path, dots, key)
            value = _walk(tree, target)
            if value is _ABSENT:
                return None
            if target not in needed:
                needed.add(target)
                pending += [((*target, *sub), inner) for sub, inner in _interpolations(value, ())]
    return needed


def _prune(tree: dict[str, Any], paths: set[_Path]) -> dict[str, Any]:
    """The part of `tree` on the given paths (shared, not copied); lists are kept whole so positions do not move."""
    pruned: dict[str, Any] = {}
    for path in sorted(paths, key=len):
        source, target = tree, pruned
        for depth, key in enumerate(path):
            value = source[key]
            if target.get(key, _ABSENT) is value:
                break  # already there whole
            if depth == len(path) - 1 or not isinstance(value, dict):
                target[key] = value
                break
            source, target = value, target.setdefault(key, {})
    return pruned


def _resolution_failure(exc: InterpolationResolutionError, recipe: PathLike | None) -> str:
    where = f"recipe {recipe}" if recipe else "the recipe"
    key = getattr(exc, "full_key", None) or "?"
    env = re.search(r"Environment variable '([^']+)' not found", str(exc))
    if env:
        return (
            f"{where} reads environment variable {env.group(1)} (${{oc.env:{env.group(1)}}} at {key}) but it is "
            f"not set; export {env.group(1)}=... before running, or override {key}"
        )
    reason = str(exc).splitlines()[0]
    return f"{where}: cannot resolve {key}: {reason}; fix the interpolation or override {key}"


def _set_at(tree: dict[str, Any], path: _Path, value: Any) -> None:
    node: Any = tree
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


# ---------------------------------------------------------------------------------------------------------------
# Dotted paths
# ---------------------------------------------------------------------------------------------------------------


def get_dotted(container: Any, key: str, default: Any = None) -> Any:
    """The value at a dotted path of plain dicts/lists (list positions as numbers), or `default` when absent."""
    value = _lookup(container, key)
    return default if value is _ABSENT else value


def has_dotted(container: Any, key: str) -> bool:
    return _lookup(container, key) is not _ABSENT


def _lookup(container: Any, key: str) -> Any:
    return _walk(container, key.split("."))


def _walk(container: Any, path: Iterable[Any]) -> Any:
    """The value at `path` (map keys, list positions as numbers or digit strings), or _ABSENT."""
    node = container
    for part in path:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and str(part).isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _ABSENT
    return node


def dotted_leaf_paths(cfg: DictConfig | Mapping[str, Any]) -> list[str]:
    """Every settable dotted path, unresolved: scalars, empty maps, and lists both whole and by position."""
    tree = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else cfg
    return [path for path, _ in leaves(tree, "")]


def leaves(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, Mapping) and node:
        for key, value in node.items():
            yield from leaves(value, f"{prefix}.{key}" if prefix else str(key))
        return
    if isinstance(node, list):
        yield prefix, node
        for index, value in enumerate(node):
            yield from leaves(value, f"{prefix}.{index}")
        return
    if prefix:
        yield prefix, node


# ---------------------------------------------------------------------------------------------------------------
# Facts read off a recipe
# ---------------------------------------------------------------------------------------------------------------

# Top-level sections that hold an algorithm's own settings (max_num_steps, val_at_end, seed...), in lookup order.
ALGO_SECTIONS = ("grpo", "sft", "dpo", "rm", "ppo", "distillation", "eval")

# Algorithms named by a file name's first token (`grpo-...`, `sft_vlm_3B`, `vlm_grpo-...`, `prorlv2.v2`).
_NAMED_ALGORITHMS = {
    "grpo",
    "dapo",
    "sft",
    "dpo",
    "rm",
    "ppo",
    "distillation",
    "vlm_grpo",
    "gdpo",
    "mopd",
    "prorlv2",
    "eval",
}
# File-name tokens that mark a multimodal recipe (run by the VLM entrypoints).
_MULTIMODAL_TOKENS = {"vlm", "avlm", "audio"}


def _name_tokens(recipe_path: PathLike) -> list[str]:
    stem = Path(recipe_path).name.removesuffix(".yaml").lower()
    return [t for t in re.split(r"[-_.]", stem) if t]


def _uses_gym(resolved: Mapping[str, Any]) -> bool:
    return bool(get_dotted(resolved, "env.should_use_nemo_gym", False))


def algo_section(resolved: Mapping[str, Any]) -> str:
    """The top-level section with the algorithm's loop settings (`<section>.max_num_steps`, `.val_at_end`, `.seed`)."""
    for section in ALGO_SECTIONS:
        if isinstance(resolved.get(section), Mapping):
            return section
    raise UsageError(
        f"the recipe has none of the algorithm sections {', '.join(ALGO_SECTIONS)}; "
        "is it a NeMo-RL training recipe? Pick a recipe under examples/configs"
    )


def algorithm_of(recipe_path: PathLike, resolved: Mapping[str, Any]) -> str:
    """The algorithm family: the file name's first token when it names one (`dapo-...` -> dapo, `vlm_grpo-...` ->
    vlm_grpo), else MOPD when on-policy distillation is configured, else the algorithm section (`rm`, `eval`, ...)."""
    stem = Path(recipe_path).name.lower()
    token = "vlm_grpo" if stem.startswith("vlm_grpo") else _name_tokens(recipe_path)[0]
    if token in _NAMED_ALGORITHMS:
        return token
    if resolved.get("on_policy_distillation") is not None:
        return "mopd"
    return algo_section(resolved)


def entrypoint_for(recipe_path: PathLike, resolved: Mapping[str, Any]) -> str:
    """The NeMo-RL script that runs this recipe, repo-relative. Reproduces the test-suite script of all 250 recipes
    and extends to base, eval and NeMo-Gym configs:

    1. a non-null top-level `async_rl` -> run_grpo_single_controller;
    2. eval configs -> run_eval;
    3. sft -> run_sft, or run_vlm_sft for a multimodal name (`vlm`, `avlm`, `audio` token); dpo/rm/ppo -> their own;
    4. distillation -> xtoken off-policy when `xtoken` is in the name, the NeMo-Gym script when
       `env.should_use_nemo_gym`, else run_distillation;
    5. `env.should_use_nemo_gym` -> nemo_gym/run_grpo_nemo_gym (GDPO, MOPD, gym GRPO and gym VLM);
    6. vlm_grpo or a multimodal name -> run_vlm_grpo; an `env.sliding_puzzle_game` section -> run_grpo_sliding_puzzle;
    7. everything else (grpo, dapo, prorlv2, ...) -> run_grpo.
    """
    if resolved.get("async_rl") is not None:
        return "examples/run_grpo_single_controller.py"
    algorithm = algorithm_of(recipe_path, resolved)
    multimodal = bool(_MULTIMODAL_TOKENS & set(_name_tokens(recipe_path)))
    if algorithm == "eval":
        return "examples/run_eval.py"
    if algorithm == "sft":
        return "examples/run_vlm_sft.py" if multimodal else "examples/run_sft.py"
    if algorithm in ("dpo", "rm", "ppo"):
        return f"examples/run_{algorithm}.py"
    if algorithm == "distillation":
        if "xtoken" in _name_tokens(recipe_path):
            return "examples/run_xtoken_off_policy_distillation.py"
        gym = _uses_gym(resolved)
        return "examples/nemo_gym/run_distillation_nemo_gym.py" if gym else "examples/run_distillation.py"
    if _uses_gym(resolved):
        return "examples/nemo_gym/run_grpo_nemo_gym.py"
    if algorithm == "vlm_grpo" or multimodal:
        return "examples/run_vlm_grpo.py"
    if has_dotted(resolved, "env.sliding_puzzle_game"):
        return "examples/run_grpo_sliding_puzzle.py"
    return "examples/run_grpo.py"


@dataclass(frozen=True)
class RecipeMetric:
    """The metric NeMo-RL ranks checkpoints by: `checkpointing.metric_name`, its TensorBoard tag and direction."""

    metric_name: str
    tag: str
    maximize: bool


def authoritative_metric(resolved: Mapping[str, Any]) -> RecipeMetric | None:
    """The recipe's own objective, or None when `checkpointing.metric_name` is null or absent. The direction is
    `checkpointing.higher_is_better`; when that is absent, loss-like metrics are minimised and others maximised."""
    name = get_dotted(resolved, "checkpointing.metric_name", None)
    if name is None:
        return None
    higher = get_dotted(resolved, "checkpointing.higher_is_better", None)
    maximize = bool(higher) if higher is not None else "loss" not in name.rsplit("/", 1)[-1]
    return RecipeMetric(metric_name=name, tag=metric_tag(name), maximize=maximize)


# What NeMo-RL's trainers log, by algorithm section, as checkpointing.metric_name spells it (`val:`/`train:` + key).
_GRPO_LOGGED = (
    "val:accuracy",
    "val:avg_length",
    "val:pass_k",
    "val:total_reward/mean",
    "train:loss",
    "train:reward",
    "train:grad_norm",
    "train:gen_kl_error",
    "train:token_mult_prob_error",
    "train:mean_gen_tokens_per_sample",
    "train:approx_entropy",
    "train:filtered_reward",
    "train:total_reward/mean",
)
LOGGED_METRICS = {
    "grpo": _GRPO_LOGGED,
    "ppo": _GRPO_LOGGED,
    "distillation": ("val:accuracy", "val:loss", "val:kl_loss", "train:loss"),
    "sft": ("val:val_loss", "train:loss", "train:grad_norm"),
    "dpo": (
        "val:validation-default_loss",
        "val:validation-default_accuracy",
        "val:validation-default_preference_loss",
        "val:validation-default_sft_loss",
        "train:loss",
        "train:accuracy",
        "train:preference_loss",
        "train:sft_loss",
        "train:rewards_chosen_mean",
        "train:rewards_rejected_mean",
    ),
    "rm": ("val:validation-default_loss", "val:validation-default_accuracy", "train:loss", "train:accuracy"),
}


def logged_metrics(resolved: Mapping[str, Any]) -> tuple[str, ...]:
    """The metric names NeMo-RL logs for this recipe's algorithm (empty when we do not know them)."""
    return LOGGED_METRICS.get(algo_section(resolved), ())


# Recipes whose tests/test_suites script runs the entrypoint with `${NRL_PYTHON:-python}` instead of `uv run`.
NRL_PYTHON_RECIPES = frozenset({"grpo-qwen3-30ba3b-2n8g-megatron_fused_linear_logprobs"})


def default_runner(recipe_path: PathLike) -> list[str]:
    """What runs the recipe's entrypoint in NeMo-RL's own test script for it."""
    if Path(recipe_path).stem in NRL_PYTHON_RECIPES:
        return [os.environ.get("NRL_PYTHON") or "python"]
    return ["uv", "run"]


def gpus_required(resolved: Mapping[str, Any]) -> int:
    """GPUs the run occupies: `cluster.gpus_per_node` x `cluster.num_nodes`."""
    per_node = get_dotted(resolved, "cluster.gpus_per_node", None)
    nodes = get_dotted(resolved, "cluster.num_nodes", None)
    if not isinstance(per_node, int) or not isinstance(nodes, int):
        raise UsageError(
            f"the recipe sets cluster.gpus_per_node={per_node!r} and cluster.num_nodes={nodes!r}; both "
            "must be integers: set them in the recipe or override them"
        )
    return per_node * nodes


def vllm_memory_share(resolved: Mapping[str, Any]) -> float | None:
    """`policy.generation.vllm_cfg.gpu_memory_utilization` where generation runs on vLLM."""
    if get_dotted(resolved, "policy.generation.backend", None) != "vllm":
        return None
    share = get_dotted(resolved, "policy.generation.vllm_cfg.gpu_memory_utilization", None)
    return float(share) if isinstance(share, (int, float)) and not isinstance(share, bool) and 0 < share <= 1 else None


# Keys whose values are files the run opens relative to the NeMo-RL checkout (prompts, local datasets, quant recipes).
DATA_FILE_KEYS = frozenset({"prompt_file", "system_prompt_file", "data_path", "quant_cfg"})


def data_files(resolved: Mapping[str, Any]) -> list[str]:
    """The local files the recipe names under DATA_FILE_KEYS (anywhere, lists included), in order; values that are
    not paths (remote URLs, named presets such as `NVFP4_DEFAULT_CFG`) are left out. Relative paths are relative to
    the NeMo-RL checkout, the entrypoints' working directory."""
    found = []
    for path, value in leaves(resolved, ""):
        name = next(part for part in reversed(path.split(".")) if not part.isdigit())
        if name in DATA_FILE_KEYS and isinstance(value, str) and _is_local_path(value):
            found.append(value)
    return list(dict.fromkeys(found))


def _is_local_path(value: str) -> bool:
    return "://" not in value and ("/" in value or bool(Path(value).suffix))


_ENV_REFERENCE = re.compile(r"\$\{oc\.env:\s*([A-Za-z_][A-Za-z0-9_]*)")


def env_vars_referenced(recipe_path: PathLike) -> set[str]:
    """Environment variables read through `${oc.env:VAR}` anywhere in the recipe's inheritance chain, including
    sections a child later replaces."""
    names: set[str] = set()
    for path in inheritance_chain(recipe_path):
        for _, value in leaves(_parse(path, None)[1], ""):
            if isinstance(value, str):
                names.update(_ENV_REFERENCE.findall(value))
    return names
