"""NeMo-RL recipes: `autoresearch init --recipe examples/configs/recipes/llm/<recipe>.yaml` in a NeMo-RL checkout.

The recipe is resolved the way NeMo-RL resolves it; a hypothesis is an edit of the recipe YAML on the
experiment branch (comments kept, coupled keys moved together), so the commit is the hypothesis and the
command stays short: `uv run <entrypoint> --config <recipe> <isolation overrides>`, from the worktree root.
Every run gets its own log and checkpoint folders (NeMo-RL silently resumes from any checkpoint it finds),
TensorBoard on, validation at the end, and a recipe-level time limit inside the external one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.git import Git, Snapshot
from nrl_autoresearch.core.recipe import RESOLVES, Check, Knob, Launch, Objective, Recipe
from nrl_autoresearch.metrics.nemo_rl import NemoRL
from nrl_autoresearch.recipes import knobs as catalog
from nrl_autoresearch.recipes import nemo_config as nc
from nrl_autoresearch.recipes import prerequisites, validity, yamledit
from nrl_autoresearch.recipes.params import directions, values_at

SETUP_MARGIN_S = 300.0  # the recipe's own limit starts after setup (Ray, model load): leave room for it
CONFIG_DIRS = ("examples",)
SMOKE_STEPS = 2  # where recipes and everything they inherit from live
# (repository, commit, recipe) -> the files the recipe composes from in that commit, which never change
_CHAINS: dict[tuple[str, str, str], tuple[str, ...]] = {}


class NemoRLRecipe(Recipe):
    kind = "nemo-rl"

    def __init__(self, path: str, entrypoint: str | None = None, runner: list[str] | None = None,
                 setup_margin_s: float = SETUP_MARGIN_S, output_root: str | None = None):
        self.path = path
        self._entrypoint = entrypoint
        self.runner = list(runner) if runner is not None else ["uv", "run"]
        self.setup_margin_s = setup_margin_s
        self.output_root = output_root  # Brev: experiment outputs on /ephemeral instead of the repository

    @property
    def label(self) -> str:
        return self.path

    # -- the recipe as NeMo-RL sees it ---------------------------------------------------------------
    def resolved(self, root: Path, overrides: list[str] | tuple[str, ...] = ()) -> dict:
        path = root / self.path
        if not path.is_file():
            raise UsageError(f"recipe {self.path!r} does not exist in {root}: see 'autoresearch recipes'")
        return nc.load_resolved(path, overrides)

    def entrypoint(self, root: Path) -> str:
        return self._entrypoint or nc.entrypoint_for(root / self.path, self.resolved(root))

    def default_objective(self, root: Path) -> Objective | None:
        found = nc.authoritative_metric(self.resolved(root))
        if found is None:
            return None
        return Objective(found.metric_name, f"{NemoRL.kind}:{found.metric_name}", found.maximize, "last")

    def logged_metrics(self, root: Path) -> tuple[str, ...]:
        return nc.logged_metrics(self.resolved(root))

    # -- hypotheses as recipe edits -------------------------------------------------------------------
    def check_change(self, snapshot: Snapshot, sets: dict[str, str]) -> None:
        if not sets:
            return
        with self._export(snapshot, sets) as tmp:
            recipe = tmp / self.path
            if not recipe.is_file():
                raise UsageError(f"recipe {self.path!r} is not in commit {snapshot.commit[:10]}")
            yamledit.set_keys(recipe, sets)  # validates every key against the resolved recipe; the copy is discarded
            refused = validity.problems(self.resolved(tmp))
        if refused:
            raise UsageError("NeMo-RL would refuse this change: " + "; ".join(refused))

    @contextmanager
    def _export(self, snapshot: Snapshot, sets: dict[str, str] | None = None) -> Iterator[Path]:
        """The commit's config files in a temporary folder: all of them the first time, then only the recipe's
        inheritance chain (extracting every config of a checkout for each check of a plan is what made it slow);
        all again for a change of `defaults:` itself."""
        key = (str(snapshot.git.path), snapshot.commit, self.path)
        chain = None if any(k.split(".")[0] == "defaults" for k in sets or {}) else _CHAINS.get(key)
        with snapshot.export(*(chain or CONFIG_DIRS)) as tmp:
            if chain is None and (tmp / self.path).is_file():
                self._remember_chain(key, tmp)
            yield tmp

    def _remember_chain(self, key: tuple[str, str, str], tmp: Path) -> None:
        try:
            files = [str(p) for p in nc.inheritance_chain(tmp / self.path)]
        except UsageError:
            return  # a broken chain is reported by whoever reads the recipe
        if all(f.startswith(f"{tmp}{os.sep}") for f in files):
            _CHAINS[key] = tuple(f[len(str(tmp)) + 1:] for f in files)

    def values(self, snapshot: Snapshot, keys: list[str]) -> dict[str, Any]:
        with self._export(snapshot) as tmp:
            if not (tmp / self.path).is_file():
                return {}
            return values_at(self.resolved(tmp), keys)

    def apply(self, worktree: Path, sets: dict[str, str]) -> list[str]:
        if not sets:
            return []
        yamledit.set_keys(worktree / self.path, sets)
        return [self.path]

    def gpus_needed(self, root: Path) -> int:
        return nc.gpus_required(self.resolved(root))

    def seeded(self) -> bool:
        return True

    def max_new_tokens(self, worktree: Path) -> int | None:
        value = nc.get_dotted(self.resolved(worktree), "policy.generation.max_new_tokens", None)
        return value if isinstance(value, int) else None

    def seed_args(self, worktree: Path, seed: int) -> list[str]:
        """NeMo-RL's own seed key, as a per-run override: `++grpo.seed=1001`."""
        return [f"++{nc.algo_section(self.resolved(worktree))}.seed={seed}"]

    def smoke_args(self, worktree: Path) -> list[str]:
        algo = nc.algo_section(self.resolved(worktree))
        return [f"++{algo}.max_num_steps={SMOKE_STEPS}", f"++{algo}.val_period={SMOKE_STEPS}"]

    # -- one run ------------------------------------------------------------------------------------
    def launch(self, worktree: Path, run_dir: Path, limit_s: float | None) -> Launch:
        resolved = self.resolved(worktree)
        argv = [*self.runner, self.entrypoint(worktree), "--config", self.path, *self.isolation(resolved, run_dir, limit_s)]
        return Launch(argv, worktree, self._environment(worktree))

    def isolation(self, resolved: dict, run_dir: Path, limit_s: float | None) -> list[str]:
        """Overrides that give every run its own state, the metrics we read, and a graceful time limit."""
        algo = nc.algo_section(resolved)
        out = Path(run_dir).resolve()
        overrides = [
            f"++logger.log_dir={out / 'logs'}",
            f"++checkpointing.checkpoint_dir={out / 'checkpoints'}",
            "++logger.tensorboard_enabled=true",
            "++logger.monitor_gpus=true",
            f"++logger.wandb_enabled={'true' if os.environ.get('WANDB_API_KEY') else 'false'}",
            f"++{algo}.val_at_end=true",
        ]
        save_by = self._save_by(resolved, limit_s)
        if save_by:
            overrides.append(f"++checkpointing.checkpoint_must_save_by={save_by}")
        return overrides

    def _save_by(self, resolved: dict, limit_s: float | None) -> str | None:
        """checkpoint_must_save_by: the tighter of the recipe's own value and our limit minus a setup margin."""
        own = nc.get_dotted(resolved, "checkpointing.checkpoint_must_save_by", None)
        own_s = _seconds(own) if own else None
        ours = max(60.0, limit_s - min(self.setup_margin_s, limit_s / 4)) if limit_s else None
        tighter = min(x for x in (own_s, ours) if x is not None) if (own_s or ours) else None
        return _ddhhmmss(tighter) if tighter and tighter != own_s else None

    def _environment(self, worktree: Path) -> dict[str, str]:
        """Reuse the main checkout's uv environment unless the branch changed the project's dependencies; refuse
        when it does not exist (uv would sync a fresh multi-GB one in the throwaway worktree)."""
        if self.runner[:1] != ["uv"]:
            return {}
        main = _main_checkout(worktree)
        venv = main / ".venv"
        if not venv.is_dir():
            raise UsageError(f"{venv} is missing: run 'uv sync --project {main}' once; runs reuse the main checkout's "
                             "environment instead of syncing a fresh one in every worktree")
        if not Git(worktree).ok("diff", "--quiet", "HEAD", _head(main), "--", "pyproject.toml", "uv.lock"):
            return {}
        return {"UV_PROJECT_ENVIRONMENT": str(venv)}

    def fingerprint(self, worktree: Path) -> str | None:
        text = json.dumps(self.resolved(worktree), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    # -- exploration ----------------------------------------------------------------------------------
    def knobs(self, snapshot: Snapshot) -> list[Knob]:
        with self._export(snapshot) as tmp:
            resolved = nc.load_resolved(tmp / self.path)
        found = []
        for k in catalog.knobs_for(resolved):
            current = nc.get_dotted(resolved, k.key)
            moves = _directions(k.moves, current)
            companions = _companions(k, resolved)
            if moves and companions is not None and not validity.inert(resolved, k.key):
                found.append(Knob(k.key, k.area, current, moves, k.risk, k.note, companions))
        return found

    # -- preflight -------------------------------------------------------------------------------------
    def preflight(self, root: Path) -> list[Check]:
        """Each line passes, fails or says it cannot tell; a fix is given only where it failed."""
        try:
            resolved = self.resolved(root)
        except UsageError as err:
            return [Check(False, RESOLVES, str(err))]
        entry = self._entrypoint or nc.entrypoint_for(root / self.path, resolved)
        missing = [f for f in nc.data_files(resolved) if not (root / f).exists()]
        unset = sorted(v for v in nc.env_vars_referenced(root / self.path) if v not in os.environ)
        return [
            Check(True, RESOLVES, self.path),
            Check((root / entry).is_file(), "entrypoint exists", entry if (root / entry).is_file()
                  else f"{entry} is not in {root}: is this a NeMo-RL checkout? (--entrypoint names another)"),
            *self._uv_checks(root),
            Check(not missing, "prompt and data files exist", ", ".join(missing) or "all present"),
            Check(not unset, "environment variables the recipe interpolates are set",
                  f"export {', '.join(unset)}" if unset else "all set"),
            *prerequisites.model_checks(resolved),
            *prerequisites.extra_installs(self.path),
        ]

    def _uv_checks(self, root: Path) -> list[Check]:
        """uv itself, and the main checkout's environment every run reuses (never a fresh sync per worktree)."""
        if self.runner[:1] != ["uv"]:
            return []
        uv = shutil.which("uv")
        main = _main_checkout(root)
        venv = main / ".venv"
        return [
            Check(uv is not None, "uv is installed", uv or "install uv: pip install uv"),
            Check(venv.is_dir(), "uv environment of the main checkout", str(venv) if venv.is_dir()
                  else f"{venv} is missing: run 'uv sync --project {main}' once (runs reuse it, none syncs its own)"),
        ]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "path": self.path, "entrypoint": self._entrypoint, "runner": self.runner,
                "setup_margin_s": self.setup_margin_s, "output_root": self.output_root}


def _directions(moves: tuple[str, ...], current) -> tuple[tuple[str, ...], ...]:
    """A catalog's moves as concrete value sequences: `x2`/`/2` scale the current value (and keep going),
    anything else is a value to set."""
    found: list[tuple[str, ...]] = []
    scaled = directions(current) if isinstance(current, (int, float)) and not isinstance(current, bool) else ()
    for move in moves:
        if move == "x2" and scaled:
            found.append(scaled[0])
        elif move == "/2" and len(scaled) > 1:
            found.append(scaled[1])
        elif move not in ("x2", "/2") and yamledit.format_value(yamledit.parse_value(move)) != yamledit.format_value(current):
            found.append((move,))
    return tuple(found)


def _companions(k: catalog.Knob, resolved: dict) -> tuple[tuple[str, str], ...] | None:
    """The settings a knob's `requires` adds where the recipe differs; None (skip the knob) when one of its
    `excludes` is on or a required key is absent."""
    if any(nc.get_dotted(resolved, key) for key in k.excludes):
        return None
    if not all(nc.has_dotted(resolved, key) for key, _ in k.requires):
        return None
    return tuple((key, yamledit.format_value(value)) for key, value in k.requires
                 if nc.get_dotted(resolved, key) != value)


def _seconds(text: str) -> float:
    parts = [int(p) for p in str(text).split(":")]
    while len(parts) < 4:
        parts.insert(0, 0)
    d, h, m, s = parts[-4:]
    return float(((d * 24 + h) * 60 + m) * 60 + s)


def _ddhhmmss(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d:02d}:{h:02d}:{m:02d}:{s:02d}"


def _main_checkout(worktree: Path) -> Path:
    common = Path(Git(worktree).run("rev-parse", "--path-format=absolute", "--git-common-dir").strip())
    return common.parent if common.name == ".git" else worktree


def _head(repo: Path) -> str:
    return Git(repo).run("rev-parse", "HEAD").strip()
