"""Config loading in NeMo-RL's style: `defaults:` inheritance plus Hydra-grammar overrides.

Only PyYAML is used, so the toy project runs anywhere; the error messages copy Hydra's so
that tools written against NeMo-RL see the same failures.
"""

from __future__ import annotations

import copy
import os
import re
from typing import Any

import yaml

Config = dict[str, Any]


class ConfigError(ValueError):
    """A config file or command-line override that cannot be applied."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-3` as a float, as OmegaConf does (plain YAML 1.1 does not)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)(?:\.\d*)?[eE][-+]?\d+$"),
    list("-+0123456789"),
)

_OVERRIDE = re.compile(r"^(?P<prefix>\+\+|\+|~)?(?P<key>[A-Za-z_][\w\-]*(?:\.[\w\-]+)*)(?:=(?P<value>.*))?$", re.S)
_INT = re.compile(r"^[-+]?\d[\d_]*$")
_FLOAT = re.compile(
    r"^[-+]?(?:\d[\d_]*\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d[\d_]*[eE][-+]?\d+|inf|nan)$", re.I
)


def load_config(path: str) -> Config:
    """Load a YAML recipe; `defaults:` names parent file(s) relative to it, merged first."""
    with open(path, encoding="utf-8") as handle:
        try:
            config = yaml.load(handle, Loader=_Loader) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    parents = config.pop("defaults", None)
    if parents is None:
        return config
    merged: Config = {}
    for parent in [parents] if isinstance(parents, str) else parents:
        merged = merge(merged, load_config(os.path.join(os.path.dirname(path), parent)))
    return merge(merged, config)


def merge(base: Config, top: Config) -> Config:
    """Deep-merge `top` onto `base`: mappings merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(config: Config, overrides: list[str]) -> Config:
    """Apply `a.b=v`, `+a.b=v`, `++a.b=v` and `~a.b` overrides in order (struct mode)."""
    config = copy.deepcopy(config)
    for override in overrides:
        _apply_one(config, override)
    return config


def parse_value(text: str) -> Any:
    """Parse an override value the way Hydra does: null, bools, numbers, quoted strings, lists."""
    text = text.strip()
    if text.lower() == "null":
        return None
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if _INT.match(text):
        return int(text.replace("_", ""))
    if _FLOAT.match(text):
        return float(text.replace("_", ""))
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text[:1] in "[{":
        try:
            return yaml.load(text, Loader=_Loader)
        except yaml.YAMLError as exc:
            raise ConfigError(f"Error parsing override value '{text}': {exc}") from exc
    return text


def _apply_one(config: Config, override: str) -> None:
    match = _OVERRIDE.match(override)
    if match is None or (match["value"] is None and match["prefix"] != "~"):
        raise ConfigError(f"Error parsing override '{override}'\nmissing EQUAL at '<EOF>'")
    prefix, key, raw = match["prefix"] or "", match["key"], match["value"]
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
        if part not in node and prefix in ("+", "++"):
            node[part] = {}
        if not isinstance(node.get(part), dict):
            raise ConfigError(_missing_message(prefix, key, raw, part))
        node = node[part]
    if prefix == "~":
        _delete(node, key, leaf, raw)
    elif prefix == "+" and leaf in node:
        raise ConfigError(f"Could not append to config. An item is already at '{key}'.")
    elif prefix == "" and leaf not in node:
        raise ConfigError(_missing_message(prefix, key, raw, leaf))
    else:
        node[leaf] = parse_value(raw)


def _delete(node: Config, key: str, leaf: str, raw: str | None) -> None:
    if leaf not in node:
        raise ConfigError(f"Could not delete from config. '{key}' does not exist.")
    if raw is not None and node[leaf] != parse_value(raw):
        raise ConfigError(f"Could not delete from config. The value of '{key}' is {node[leaf]} and not {raw}.")
    del node[leaf]


def _missing_message(prefix: str, key: str, raw: str | None, part: str) -> str:
    if prefix == "~":
        return f"Could not delete from config. '{key}' does not exist."
    return (
        f"Could not override '{key}'.\nTo append to your config use +{key}={raw}\n"
        f"Key '{part}' is not in struct\n    full_key: {key}\n    object_type=dict"
    )
