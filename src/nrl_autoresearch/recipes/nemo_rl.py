"""NeMo-RL recipes: `autoresearch init --recipe examples/configs/recipes/llm/<recipe>.yaml` in a NeMo-RL checkout.

The recipe is resolved the way NeMo-RL resolves it; a hypothesis is an edit of the recipe YAML on the
experiment branch (comments kept, coupled keys moved together), so the commit is the hypothesis and the
command stays short: `uv run <entrypoint> --config <recipe> <isolation overrides>`, from the worktree root.
Every run gets its own log and checkpoint folders (NeMo-RL silently resumes from any checkpoint it finds),
TensorBoard on, validation at the end, and a recipe-level time limit inside the external one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.git import Git, Snapshot
from nrl_autoresearch.core.recipe import RESOLVES, Check, Launch, Objective, Recipe, TunableSetting
from nrl_autoresearch.metrics.nemo_rl import NemoRL
from nrl_autoresearch.recipes import hub, prerequisites, validity, yamledit
from nrl_autoresearch.recipes import knobs as catalog
from nrl_autoresearch.recipes import nemo_config as nc
from nrl_autoresearch.recipes.params import directions, values_at

SETUP_MARGIN_S = 300.0  # the recipe's own limit starts after setup (Ray, model load): leave room for it
CONFIG_DIRS = ("examples",)  # where recipes and everything they inherit from live
SMOKE_STEPS = 2
# (repository, commit, recipe) -> the files the recipe composes from in that commit, which never change
_CHAINS: dict[tuple[str, str, str], tuple[str, ...]] = {}


class NemoRLRecipe(Recipe):
    kind = "nemo-rl"

    def __init__(
        self,
        path: str,
        entrypoint: str | None = None,
        runner: list[str] | None = None,
        setup_margin_s: float = SETUP_MARGIN_S,
        output_root: str | None = None,
    ):
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

    def prepared(self, snapshot: Snapshot, sets: dict[str, str]) -> tuple[dict[str, str] | None, str]:
        """The change with the companions NeMo-RL needs with it (the catalog's `requires`), or why it is skipped:
        a knob turned on with one it excludes, a setting with no effect under the changed recipe, a refusal."""
        with self._export(snapshot, sets) as tmp:
            recipe = tmp / self.path
            if not recipe.is_file():
                return None, f"recipe {self.path!r} is not in commit {snapshot.commit[:10]}"
            before = self.resolved(tmp)
            added, why = catalog.completed(before, {k: yamledit.parse_value(v) for k, v in sets.items()})
            if why:
                return None, why
            full = {**sets, **{k: yamledit.format_value(v) for k, v in added.items()}}
            try:
                yamledit.set_keys(recipe, full)
            except UsageError as err:
                return None, str(err)
            after = self.resolved(tmp)
        changed = [key for key in sets if nc.get_dotted(before, key, None) != nc.get_dotted(after, key, None)]
        idle = [reason for key in changed if (reason := validity.inert(after, key))]
        why = "; ".join(idle or validity.problems(after)) if changed else "the change sets every key to its value"
        return (None, why) if why else (full, "")

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
            _CHAINS[key] = tuple(f[len(str(tmp)) + 1 :] for f in files)

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

    def gpu_memory_share(self, root: Path) -> float | None:
        """vLLM's gpu_memory_utilization: vLLM refuses to start on a GPU with less of its memory free."""
        return nc.vllm_memory_share(self.resolved(root))

    def checkpoint_gib(self, root: Path) -> tuple[float | None, str] | None:
        return hub.checkpoint_gib(self.resolved(root))

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

    def shortened_args(self, worktree: Path, share: float) -> tuple[list[str], int, int] | None:
        """`++grpo.max_num_steps=k`, k a whole number of validation periods (at least one), so that the last step
        is evaluated as the full run evaluates it."""
        resolved = self.resolved(worktree)
        algo = nc.algo_section(resolved)
        total = nc.get_dotted(resolved, f"{algo}.max_num_steps", None)
        period = nc.get_dotted(resolved, f"{algo}.val_period", None)
        if not isinstance(total, int) or total < 2:
            return None
        period = period if isinstance(period, int) and 0 < period <= total else 1
        steps = min(total, max(period, round(total * share / period) * period))
        return [f"++{algo}.max_num_steps={steps}"], steps, total

    def smoke_scale(self, root: Path, free_gpus: int) -> tuple[int, list[str]]:
        """One node of as many GPUs as are free, a divisor of the recipe's count (its batch sizes divide by it as
        they did), that NeMo-RL still accepts (whole data parallelism, generation GPUs where not colocated)."""
        resolved = self.resolved(root)
        full = nc.gpus_required(resolved)
        fewest = full
        for count in range(full, 0, -1):
            if full % count or validity.problems(_on_one_node(resolved, count)):
                continue
            if count <= free_gpus:
                same = count == full and resolved["cluster"]["num_nodes"] == 1
                return count, [] if same else ["++cluster.num_nodes=1", f"++cluster.gpus_per_node={count}"]
            fewest = count
        return fewest, []

    # -- one run ------------------------------------------------------------------------------------
    def launch(self, worktree: Path, run_dir: Path, limit_s: float | None) -> Launch:
        resolved = self.resolved(worktree)
        argv = [
            *self.runner,
            self.entrypoint(worktree),
            "--config",
            self.path,
            *self.isolation(resolved, run_dir, limit_s),
        ]
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
            raise UsageError(
                f"{venv} is missing: run 'uv sync --project {main}' once; runs reuse the main checkout's "
                "environment instead of syncing a fresh one in every worktree"
            )
        if not Git(worktree).ok("diff", "--quiet", "HEAD", _head(main), "--", "pyproject.toml", "uv.lock"):
            return {}
        return {"UV_PROJECT_ENVIRONMENT": str(venv)}

    # -- exploration ----------------------------------------------------------------------------------
    def knobs(self, snapshot: Snapshot) -> list[TunableSetting]:
        with self._export(snapshot) as tmp:
            resolved = nc.load_resolved(tmp / self.path)
        found = []
        for k in catalog.knobs_for(resolved):
            current = nc.get_dotted(resolved, k.key)
            moves = _directions(k.moves, current)
            companions = k.companions(resolved)
            if moves and companions is not None and not validity.inert(resolved, k.key):
                shown = tuple((key, yamledit.format_value(value)) for key, value in companions)
                found.append(TunableSetting(k.key, k.area, current, moves, k.risk, k.note, shown))
        return found

    # -- preflight -------------------------------------------------------------------------------------
    def preflight(self, root: Path) -> list[Check]:
        """Each line passes, fails or says it cannot tell; a fix is given only where it failed."""
        try:
            resolved = self.resolved(root)
        except UsageError as err:
            return [Check(False, RESOLVES, str(err))]
        entry = self._entrypoint or nc.entrypoint_for(root / self.path, resolved)
        missing = [f for f in nc.data_files(resolved) if not (root / f).exists() and not hub.is_repo_id(f, root)]
        unset = sorted(v for v in nc.env_vars_referenced(root / self.path) if v not in os.environ)
        return [
            Check(True, RESOLVES, self.path),
            Check(
                (root / entry).is_file(),
                "entrypoint exists",
                entry
                if (root / entry).is_file()
                else f"{entry} is not in {root}: is this a NeMo-RL checkout? (--entrypoint names another)",
            ),
            *self._uv_checks(root),
            Check(not missing, "prompt and data files exist", ", ".join(missing) or "all present"),
            Check(
                not unset,
                "environment variables the recipe interpolates are set",
                f"export {', '.join(unset)}" if unset else "all set",
            ),
            *hub.model_checks(resolved),
            *hub.dataset_checks(resolved, root),
            *prerequisites.extra_installs(self.path),
        ]

    def _uv_checks(self, root: Path) -> list[Check]:
        """uv itself, and the main checkout's environment every run reuses (never a fresh sync per worktree),
        synced for this checkout's uv.lock and pyproject.toml."""
        if self.runner[:1] != ["uv"]:
            return []
        uv = shutil.which("uv")
        main = _main_checkout(root)
        venv = main / ".venv"
        checks = [
            Check(uv is not None, "uv is installed", uv or "install uv: pip install uv"),
            Check(
                venv.is_dir(),
                "uv environment of the main checkout",
                str(venv)
                if venv.is_dir()
                else f"{venv} is missing: run 'uv sync --project {main}' once (runs reuse it, none syncs its own)",
            ),
        ]
        if uv and venv.is_dir():
            checks.append(prerequisites.uv_synced(uv, root, venv, main))
        return checks

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "path": self.path,
            "entrypoint": self._entrypoint,
            "runner": self.runner,
            "setup_margin_s": self.setup_margin_s,
            "output_root": self.output_root,
        }


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
        elif move not in ("x2", "/2") and yamledit.format_value(yamledit.parse_value(move)) != yamledit.format_value(
            current
        ):
            found.append((move,))
    return tuple(found)


def _on_one_node(resolved: dict, gpus: int) -> dict:
    return {**resolved, "cluster": {**resolved.get("cluster", {}), "num_nodes": 1, "gpus_per_node": gpus}}


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
