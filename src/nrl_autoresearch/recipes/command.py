"""Any training command: `--command "python train.py ..."`, changed through a params file or appended flags."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.git import Snapshot
from nrl_autoresearch.core.recipe import Launch, Recipe, TunableSetting
from nrl_autoresearch.recipes import params

FLAGS_FILE = ".autoresearch/flags.json"


def split_words(text: str, *, what: str) -> list[str]:
    """A command line split as the shell would; an unclosed quote is bad input, not a traceback."""
    try:
        return shlex.split(text)
    except ValueError as err:
        raise UsageError(
            f"bad {what} {text!r}: {str(err).lower()}; close every quote, as the shell would need"
        ) from None


class CommandRecipe(Recipe):
    """`--set` edits `params_file`, or (set_style 'flags') becomes `--key value` flags recorded in FLAGS_FILE,
    committed on the experiment branch so that the commit alone reproduces the run."""

    kind = "command"

    def __init__(
        self, command: list[str], params_file: str | None = None, set_style: str = "file", seed_flag: str | None = None
    ):
        if not command:
            raise UsageError("--command is empty: give the training command, for example --command 'python train.py'")
        if set_style not in ("file", "flags"):
            raise UsageError(
                f"bad --set-style {set_style!r}: use 'file' (edit --params-file) or 'flags' (append --key value)"
            )
        if set_style == "file" and params_file:
            params.file_format(Path(params_file))
        self.command = command
        self.params_file = params_file
        self.set_style = set_style
        self.seed_flag = seed_flag and _flag(seed_flag)

    @property
    def label(self) -> str:
        return self.params_file or shlex.join(self.command)

    def check_change(self, snapshot: Snapshot, sets: dict[str, str]) -> None:
        if not sets or self.set_style == "flags":
            return
        if not self.params_file:
            raise UsageError(
                "--set needs a place to apply it: init the campaign with --params-file PATH or --set-style flags"
            )
        text = snapshot.read_text(self.params_file)
        if text is None:
            raise UsageError(
                f"params file {self.params_file!r} is not in commit {snapshot.commit[:10]}: commit it first"
            )
        params.check_keys(self.params_file, text, sets)

    def values(self, snapshot: Snapshot, keys: list[str]) -> dict[str, Any]:
        if self.set_style == "flags":
            text = snapshot.read_text(FLAGS_FILE)
            flags = json.loads(text) if text else {}
            return {k: params.parse_value(flags[k]) for k in keys if k in flags}
        text = snapshot.read_text(self.params_file) if self.params_file else None
        return params.values_at(params.load_text(self.params_file, text), keys) if text and self.params_file else {}

    def apply(self, worktree: Path, sets: dict[str, str]) -> list[str]:
        if not sets:
            return []
        if self.set_style == "flags":
            path = worktree / FLAGS_FILE
            flags = json.loads(path.read_text()) if path.exists() else {}
            flags.update(sets)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(flags, indent=2) + "\n")
            return [FLAGS_FILE]
        assert self.params_file, "check_change() refuses --set without a params file"
        params.edit_file(worktree / self.params_file, sets, where=self.params_file)
        return [self.params_file]

    def launch(self, worktree: Path, run_dir: Path, limit_s: float | None) -> Launch:
        argv = list(self.command)
        path = worktree / FLAGS_FILE
        if self.set_style == "flags" and path.exists():
            for key, value in json.loads(path.read_text()).items():
                argv += [f"--{key}", str(value)]
        return Launch(argv, worktree)

    def seeded(self) -> bool:
        return bool(self.seed_flag)

    def seed_args(self, worktree: Path, seed: int) -> list[str]:
        if not self.seed_flag:
            return super().seed_args(worktree, seed)
        return [self.seed_flag, str(seed)]

    def knobs(self, snapshot: Snapshot) -> list[TunableSetting]:
        """Every number and switch of the params file, in file order: x2 and /2, or flipped."""
        text = snapshot.read_text(self.params_file) if self.set_style == "file" and self.params_file else None
        if text is None or self.params_file is None:
            return []
        doc = params.load_text(self.params_file, text)
        found = []
        for key in params.leaf_paths(doc):
            value = params.get_path(doc, key)
            moves = params.directions(value)
            if moves:
                found.append(TunableSetting(key, "parameters", value, moves))
        return found

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "command": self.command,
            "params_file": self.params_file,
            "set_style": self.set_style,
            "seed_flag": self.seed_flag,
        }


def _flag(name: str) -> str:
    """A flag as the command takes it: `seed` and `--seed` both mean `--seed`, as `--set` adds the dashes."""
    if not name.strip("-") or any(c.isspace() or c == "=" for c in name):
        raise UsageError(
            f"bad --seed-flag {name!r}: give the flag your command takes for the seed, e.g. --seed-flag --seed"
        )
    return name if name.startswith("-") else f"--{name}"
