"""The operations behind the command line and the MCP server: one implementation, two faces.

Each function takes plain values, refuses bad input with a UsageError before anything is created, and returns
either the campaign or a JSON-ready dict whose shape is documented in `schemas/` and checked by the tests.
"""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrl_autoresearch.core import campaign as campaigns
from nrl_autoresearch.core.campaign import Campaign
from nrl_autoresearch.core.errors import StopConditionMet, UsageError
from nrl_autoresearch.core.git import Git, Snapshot
from nrl_autoresearch.core.launcher import GRACE_S
from nrl_autoresearch.core.ledger import COLUMNS, STATUSES, Ledger, is_pruned, is_screen
from nrl_autoresearch.core.metric import validate_aggregate
from nrl_autoresearch.core.names import slugify, validate_name
from nrl_autoresearch.core.recipe import RESOLVES, Objective, Recipe
from nrl_autoresearch.core.redact import protect_command
from nrl_autoresearch.core.stoprules import DEFAULT_EXPERIMENTS, StopRules, parse_duration
from nrl_autoresearch.interface.options import INIT, request_of
from nrl_autoresearch.launchers import choose, make_launcher, parse_options
from nrl_autoresearch.metrics import SOURCES, parse_source
from nrl_autoresearch.runner import brev as brev_layout
from nrl_autoresearch.runner.workspace import (
    Workspace,
    check_prefix_free,
    default_prefix,
    validate_prefix,
)

if TYPE_CHECKING:
    from nrl_autoresearch.runner.context import Context
    from nrl_autoresearch.runner.engine import Engine
    from nrl_autoresearch.runner.planner import Planner

# baseline runs by default, most preferred first: with six, single runs judged in looks keep about 5% of null
# changes and about 90% of real gains of 2.5 to 3 spreads (judge.py; benchmarks/noise_verdicts.py)
AUTO_BASELINE_REPEATS = (6, 4, 2)
EXCLUDES = [f"/{campaigns.LEDGER}", f"/{campaigns.LEDGER}.lock", f"/{campaigns.CAMPAIGNS}/", "/session/"]


@request_of(INIT)
class CampaignRequest:
    """Everything `autoresearch init` accepts: one field per option of `options.CAMPAIGN`, with its default,
    checked (bounds, choices) when it is built."""

    if TYPE_CHECKING:

        def __init__(self, **fields: Any) -> None: ...

        def __getattr__(self, name: str) -> Any: ...


def create_campaign(root: Path, req: CampaignRequest, *, save: bool = True) -> Campaign:
    """Validate everything, then create the ledger and the campaign folder (all untracked); with `save` false,
    the campaign exists in memory only (what `plan` shows before init)."""
    if bool(req.command) == bool(req.recipe):
        raise UsageError('give exactly one of --command "python train.py ..." or --recipe <NeMo-RL recipe.yaml>')
    from nrl_autoresearch.integrations import notify, tracking  # their clients: only when a campaign is created
    from nrl_autoresearch.recipes import params
    from nrl_autoresearch.recipes.command import CommandRecipe, split_words
    from nrl_autoresearch.runner.watch import parse_stall

    urls = notify.validate(req.notify)
    mlflow_uri = tracking.validate(req.mlflow)
    if req.recipe:
        recipe = nemo_recipe(
            root,
            req.recipe,
            req.entrypoint,
            split_words(req.runner, what="--runner") if req.runner else None,
            strict=save,
        )
        slug = Path(req.recipe).stem
    else:
        if not req.metric:
            raise UsageError("give the objective with --metric NAME (and --metric-source, --maximize or --minimize)")
        params_file = params.repo_file(root, req.params_file, Snapshot(Git(root), "HEAD")) if req.params_file else None
        recipe = CommandRecipe(
            protect_command(split_words(req.command, what="--command")), params_file, req.set_style, req.seed_flag
        )
        slug = script_name(recipe.command)
    objective = objective_for(root, recipe, req.metric, req.maximize, req.metric_source, req.aggregate)
    rules = StopRules.build(
        now=time.time(),
        max_experiments=req.max_experiments,
        budget=req.budget,
        per_experiment=req.per_experiment,
        target=req.target,
        stop=req.stop,
        metric=objective.metric_name,
        gpu_hours=req.gpu_hours,
    )
    stall = parse_stall(req.stall)
    _check_screen(root, recipe, req.screen)
    noise = _noise_options(recipe, req, rules)
    rules = with_baseline_room(rules, noise["baseline_repeats"])
    launcher = launcher_config(
        req.launcher, req.launcher_options, recipe.gpus_needed(root) or req.gpus_per_experiment, grace=req.grace
    )
    c = new_campaign(
        root,
        recipe,
        objective,
        rules,
        prefix=req.prefix,
        name=req.name,
        slug=slug,
        min_delta=req.min_delta,
        launcher=launcher,
        options={
            "gpus_per_experiment": req.gpus_per_experiment,
            "protected": list(req.protected),
            "stall": stall,
            "prune": req.prune,
            "screen": req.screen,
            "notify": urls,
            "mlflow": mlflow_uri,
            **noise,
            **_brev_options(req),
        },
        save=save,
    )
    return c


def _check_screen(root: Path, recipe: Recipe, screen: float | None) -> None:
    if screen is None:
        return
    if not 0 < screen < 1:
        raise UsageError(f"bad --screen {screen}: give the share of the training steps a screen runs, e.g. 0.25")
    if recipe.shortened_args(root, screen) is None:
        raise UsageError(
            f"--screen needs a recipe whose step count can be set ({recipe.label} cannot say): "
            "use a NeMo-RL recipe, or leave --screen out"
        )


def _brev_options(req: CampaignRequest) -> dict:
    """Brev's layout, when asked for or detected: the campaign's name is only known later, hence a placeholder."""
    if req.brev is False or (req.brev is None and not brev_layout.detected()):
        return {}
    if not Path(req.brev_volume).is_dir():
        raise UsageError(f"the Brev volume {req.brev_volume} does not exist: mount it, or pass --brev-volume DIR")
    return {"brev": {"volume": req.brev_volume}}


def _noise_options(recipe: Recipe, req: CampaignRequest, rules: StopRules) -> dict:
    """Repeats, the z threshold and the runs that check a result; all but z need a way to vary the seed."""
    baseline_repeats = auto_baseline_repeats(recipe, rules) if req.baseline_repeats is None else req.baseline_repeats
    if (baseline_repeats > 1 or req.repeats > 1 or req.confirm) and not recipe.seeded():
        raise UsageError(
            "--baseline-repeats, --repeats and --confirm rerun with other seeds: give --seed-flag "
            "(the flag your command takes, e.g. --seed-flag --seed)"
        )
    return {
        "baseline_repeats": baseline_repeats,
        "repeats": req.repeats,
        "z": req.z,
        "confirm": req.confirm,
        "sequential": req.sequential and recipe.seeded(),
        "seed_base": req.seed_base,
    }


def auto_baseline_repeats(recipe: Recipe, rules: StopRules) -> int:
    """Baseline runs by default: the most of AUTO_BASELINE_REPEATS that cost at most a quarter of an explicit count
    or time budget, when the seed can vary (else 1). The spread they measure is what keeps noise out of the
    ledger; the default rule makes room for them."""
    if not recipe.seeded():
        return 1
    shares = []
    if rules.max_experiments is not None and not rules.implicit:
        shares.append(rules.max_experiments / 4)
    if rules.budget_s and rules.per_experiment_s:
        shares.append(rules.budget_s / 4 / rules.per_experiment_s)
    room = min(shares, default=AUTO_BASELINE_REPEATS[0])
    return next((n for n in AUTO_BASELINE_REPEATS if n <= room), 1)


def with_baseline_room(rules: StopRules, baseline_repeats: int) -> StopRules:
    """The default rule is the baseline plus three attempts: the baseline's repeats are on top."""
    if not rules.implicit:
        return rules
    return replace(rules, max_experiments=baseline_repeats + DEFAULT_EXPERIMENTS - 1)


def create_demo(
    dest: Path,
    *,
    experiments: int | None = None,
    launcher: str = "local",
    launcher_options: tuple[str, ...] = (),
    baseline_repeats: int | None = None,
) -> Campaign:
    """The embedded toy project as a fresh repository, with a campaign on its recipe (default rule: baseline + 3)."""
    from nrl_autoresearch.demo import RECIPE, create_repo
    from nrl_autoresearch.recipes.nemo_rl import NemoRLRecipe

    if experiments is not None and experiments < 1:
        raise UsageError(f"bad --experiments {experiments}: run at least one experiment after the baseline")
    launcher_config(launcher, launcher_options, 0)  # refuse bad options before the folder is created
    create_repo(dest)
    recipe = NemoRLRecipe(RECIPE, runner=[sys.executable])
    objective = objective_for(dest, recipe, None, None, None, "last")
    rules = StopRules.build(now=time.time(), per_experiment="5m")
    noise = _noise_options(recipe, CampaignRequest(baseline_repeats=baseline_repeats), rules)
    rules = with_baseline_room(rules, noise["baseline_repeats"])
    if experiments:
        rules = replace(rules, max_experiments=noise["baseline_repeats"] + experiments, implicit=False)
    return new_campaign(
        dest,
        recipe,
        objective,
        rules,
        prefix=None,
        name=None,
        slug="grpo-toy-digitsum",
        launcher=launcher_config(launcher, launcher_options, 0),
        options=noise,
    )


def launcher_config(
    name: str, options: tuple[str, ...] | list[str], gpus_needed: int, *, grace: str | None = None
) -> dict:
    """The launcher's name (chosen deliberately for 'auto', with the reason kept) and its options, checked now."""
    extra = parse_options(options)
    chosen = None
    if name == "auto":
        name, chosen = choose(gpus_needed, extra)
    config = {"name": name, "grace_s": parse_duration(grace, what="--grace") if grace else GRACE_S, **extra}
    missing = make_launcher(config).missing_tools()
    if missing:
        raise UsageError(
            f"--launcher {name} needs {', '.join(missing)} on PATH, and they are not there: run init where "
            "that scheduler's commands are (a login node), or choose another --launcher"
        )
    return {**config, **({"chosen": chosen} if chosen else {})}


def nemo_recipe(
    root: Path, recipe: str, entrypoint: str | None, runner: list[str] | None, *, strict: bool = True
) -> Recipe:
    """A NeMo-RL recipe, checked by preflight before anything is created (not `strict`: only that it resolves,
    the rest is for the plan to show)."""
    from nrl_autoresearch.recipes.nemo_config import default_runner
    from nrl_autoresearch.recipes.nemo_rl import NemoRLRecipe

    path = Path(recipe)
    rel = path.resolve().relative_to(root.resolve()) if path.is_absolute() else path
    obj = NemoRLRecipe(rel.as_posix(), entrypoint, runner or default_runner(rel.as_posix()))
    blocking = [c for c in obj.preflight(root) if c.blocking and not c.ok and (strict or c.item == RESOLVES)]
    if blocking:
        raise UsageError("preflight failed: " + "; ".join(f"{c.item}: {c.detail}" for c in blocking))
    return obj


def objective_for(
    root: Path, recipe: Recipe, metric: str | None, maximize: bool | None, metric_source: str | None, aggregate: str
) -> Objective:
    """The objective given, completed from the recipe's own (NeMo-RL's checkpointing.metric_name) where it is silent.
    A metric given as KIND:NAME with a source's kind (wandb:val/acc) names the source too."""
    kind, sep, name = (metric or "").partition(":")
    if sep and kind in SOURCES and not metric_source:
        metric, metric_source = name, str(parse_source(metric))
    declared = recipe.default_objective(root)
    metric = metric or (declared.metric_name if declared else None)
    if not metric:
        raise UsageError("the recipe declares no checkpointing.metric_name: give the objective with --metric")
    if not metric_source:
        _check_logged(root, recipe, metric)
    if declared and metric == declared.metric_name:
        source = metric_source or declared.source
        maximize = declared.maximize if maximize is None else maximize
    else:
        source = metric_source or (f"nemo-rl:{metric}" if declared else f"line:{metric}")
    if maximize is None:
        raise UsageError(f"say which way {metric!r} is better: add --maximize or --minimize")
    return Objective(metric, str(parse_source(source)), maximize, validate_aggregate(aggregate))


def _check_logged(root: Path, recipe: Recipe, metric: str) -> None:
    """Refuse a --metric that is a near miss of what the recipe logs; a name far from all of them may be custom."""
    import difflib

    logged = recipe.logged_metrics(root)
    close = difflib.get_close_matches(metric, logged, n=3, cutoff=0.75) if metric not in logged else []
    if close:
        raise UsageError(
            f"the recipe's runs log no metric {metric!r}: did you mean {' or '.join(close)}? "
            f"(it logs {', '.join(logged)}; --metric-source reads any other)"
        )


def new_campaign(
    root: Path,
    recipe: Recipe,
    objective: Objective,
    rules: StopRules,
    *,
    prefix: str | None,
    name: str | None,
    slug: str,
    min_delta: float = 0.0,
    launcher: dict | None = None,
    options: dict | None = None,
    save: bool = True,
) -> Campaign:
    git = Git(root)
    head = git.rev("HEAD")
    if head is None:
        raise UsageError(f"{root} has no commit yet: commit your starting point, then run init")
    prefix = validate_prefix(git, prefix or default_prefix(name or slug))
    name = validate_name(name or prefix.rsplit("/", 1)[-1], what="campaign name", reserved=())
    if campaigns.exists(root, name):
        raise UsageError(f"campaign {name!r} already exists in {root}: continue it, or pass --campaign with a new name")
    check_prefix_free(git, prefix)
    campaigns.check_untracked(git)
    options = dict(options or {})
    if options.get("brev"):
        options["brev"] = brev_layout.layout(Path(options["brev"]["volume"]), name)
    c = Campaign(
        name=name,
        prefix=prefix,
        repo=root,
        created_at=time.time(),
        base_commit=head,
        recipe=recipe.to_dict(),
        objective=objective,
        rules=rules,
        min_delta=min_delta,
        launcher=launcher or {"name": "local"},
        options=options,
    )
    if not save:
        return c
    Workspace(root, prefix, c.worktrees).ensure_excluded(EXCLUDES)
    Ledger(c.ledger_path).ensure()
    c.save()
    return c


SCRIPT_SUFFIXES = {".py", ".sh", ".bash", ".ipynb", ".js", ".ts", ".rb", ".pl", ".jl", ".r", ".lua", ".yaml", ".yml"}


def script_name(argv: list[str]) -> str:
    """The campaign's name from what the command runs (`train` of `python train.py --seed 1`, the module after
    `-m`, else the program), never from an argument's value: a value may be a secret, and names are written
    into branches, commits and folders."""
    for i, word in enumerate(argv):
        if word == "-m" and i + 1 < len(argv):
            return slugify(argv[i + 1].rsplit(".", 1)[-1])
        if (
            not word.startswith("-")
            and "=" not in word
            and "$" not in word
            and Path(word).suffix.lower() in SCRIPT_SUFFIXES
        ):
            return slugify(Path(word).stem)
    return slugify(Path(argv[0]).stem)


# -- reading state, as JSON-ready dicts -----------------------------------------------------------------
def status_data(planner: Planner) -> dict:
    """Built from the planner alone (no engine, no runner parts), so that `status` starts fast."""
    context = planner.context
    c = context.campaign
    rows = context.rows()
    top = context.best_row()
    st = planner.status()
    left = c.rules.deadline - time.time() if c.rules.deadline else None
    return {
        "campaign": c.name,
        "prefix": c.prefix,
        "objective": {"metric": c.objective.metric_name, "direction": c.objective.direction},
        "current_branch": context.workspace.user_branch(),
        "attempted": len(rows),
        "max_experiments": c.rules.max_experiments,
        "remaining_experiments": None
        if c.rules.max_experiments is None
        else max(0, c.rules.max_experiments - len(rows)),
        "remaining_seconds": None if left is None else max(0.0, left),
        "latest": rows[-1].to_dict() if rows else None,
        "best_keep": top.to_dict() if top else None,
        "counts": {s: sum(r.status == s for r in rows) for s in STATUSES},
        "base": base_data(context),
        "stop": {"met": st.met, "trigger": st.trigger, "sentence": st.sentence},
        "monitors": c.rules.monitors(),
        "gpu_hours": {"used": planner.gpu_hours(), "budget": c.rules.gpu_hours, "gpus_per_run": planner.gpus_held()},
        "pruned": sum(is_pruned(r.description) and not is_screen(r.description) for r in rows),
    }


def base_data(context: Context) -> dict:
    """The commit experiments start from and how many commits the person's branch has made past it: before the
    baseline the campaign follows those commits, afterwards they are built on with `try --parent BRANCH`."""
    git, base = context.workspace.git, context.campaign.base_commit
    if not context.baseline_rows():
        return {"commit": git.rev("HEAD") or base, "commits_past": 0, "follows_your_commits": True}
    ahead = int(git.run("rev-list", "--count", f"{base}..HEAD", check=False).strip() or 0)
    return {"commit": base, "commits_past": ahead, "follows_your_commits": False}


def ledger_data(c: Campaign) -> dict:
    return {"columns": list(COLUMNS), "rows": [r.to_dict() for r in Ledger(c.ledger_path).rows(c.prefix)]}


def preflight_data(engine: Engine) -> dict:
    checks = engine.preflight()
    return {
        "ok": not any(c.blocking and not c.ok for c in checks),
        "checks": [
            {"ok": c.ok, "status": c.status, "item": c.item, "detail": c.detail, "blocking": c.blocking} for c in checks
        ],
    }


def recipes_data(root: Path) -> dict:
    """Every recipe under examples/configs/recipes with what a campaign needs to know of it."""
    from nrl_autoresearch.recipes import nemo_config as nc

    found: list[dict[str, Any]] = []
    for path in sorted((root / "examples" / "configs" / "recipes").rglob("*.yaml")):
        rel = path.relative_to(root).as_posix()
        try:
            resolved = nc.load_resolved(path)
            metric = nc.authoritative_metric(resolved)
            entry = nc.entrypoint_for(path, resolved)
        except UsageError as err:
            found.append({"recipe": rel, "error": str(err)})
            continue
        found.append(
            {
                "recipe": rel,
                "algorithm": nc.algorithm_of(path, resolved),
                "entrypoint": entry,
                "metric": metric.metric_name if metric else None,
                "direction": ("maximize" if metric.maximize else "minimize") if metric else None,
                "nodes": nc.get_dotted(resolved, "cluster.num_nodes"),
                "gpus_per_node": nc.get_dotted(resolved, "cluster.gpus_per_node"),
            }
        )
    if not found:
        raise UsageError(
            f"no recipes under {root / 'examples/configs/recipes'}: is this a NeMo-RL checkout? (--repo DIR)"
        )
    return {"recipes": found}


def resume_data(engine: Engine) -> dict:
    """What whoever picks the campaign up must know first, and every mismatch found."""
    from nrl_autoresearch.core.session import latest

    c = engine.campaign
    rows = engine.rows()
    st = engine.status()
    found = latest(c.repo)
    handoff = found / "handoff.md" if found and (found / "handoff.md").exists() else None
    return {
        "objective": {
            "metric": c.objective.metric_name,
            "direction": c.objective.direction,
            "source": c.objective.source,
            "goal": c.options.get("goal"),
        },
        "stop_rules": c.rules.monitors(),
        "current_branch": engine.workspace.user_branch(),
        "latest": rows[-1].to_dict() if rows else None,
        "stop": {"met": st.met, "sentence": st.sentence},
        "session": str(found) if found else None,
        "handoff": str(handoff) if handoff else None,
        "mismatches": engine.verify(),
    }


def init_data(c: Campaign) -> dict:
    """What `init` reports: the campaign, the person's branch and the uncommitted changes left alone."""
    state = Workspace(c.repo, c.prefix, c.worktrees).user_state()
    return {
        "campaign": c.to_dict(),
        "user_branch": state.branch,
        "unrelated_changes": state.dirty,
        "monitors": c.rules.monitors(),
    }


def loop_plan(engine: Engine, spec: str, workers: int, more: int | None, count: int = 3):
    """Validate the proposer and its hypotheses, allow `more` attempts (in memory: saved once the plan is
    confirmed), refuse a met stop rule, and state the plan. Creates nothing. Returns (proposer, text, first)."""
    from nrl_autoresearch.proposers import make_proposer
    from nrl_autoresearch.report.markdown import counts
    from nrl_autoresearch.report.text import plan_text

    if workers < 1:
        raise UsageError(f"bad --workers {workers}: run at least one experiment at a time")
    if more is not None and more < 1:
        raise UsageError(f"bad --continue {more}: allow at least one more attempt")
    engine.follow_head()
    if engine.baseline_rows() and not engine.owed_reruns(baseline_only=True):
        engine.require_valid_baseline()  # a crashed baseline is no reference: its diagnosis, before any plan
    proposer = make_proposer(spec, engine.proposer_context())
    for hypothesis in getattr(proposer, "hypotheses", []):
        engine.check(hypothesis)
    if more is not None:
        engine.extend_rules(more)
    if engine.status().met:
        raise StopConditionMet(engine.status().sentence)
    room = engine.planner.hypotheses_room(len(engine.owed_reruns()))
    shown = min(count, room) if room is not None else count
    first = proposer.preview(engine.history(), shown) if shown > 0 else []
    rows = engine.rows()
    text = plan_text(
        engine.campaign,
        proposer=spec,
        first=first,
        has_baseline=bool(engine.valid_baseline()),
        workers=workers,
        reruns=len(engine.owed_reruns()),
        tally=counts(rows, engine.gpu_hours()) if rows else None,
    )
    return proposer, text, first


def plan_data(engine: Engine, proposer: str = "catalog", count: int = 3) -> dict:
    """Everything `run` would show before confirmation, and the baseline's exact launch. Creates nothing."""
    from nrl_autoresearch.report.text import noise_text

    if count < 0:
        raise UsageError(f"bad --count {count}: give 0 or more hypotheses to show")
    c = engine.campaign
    _, text, first = loop_plan(engine, proposer, 1, None, count)
    return {
        "campaign": c.name,
        "prefix": c.prefix,
        "recipe": c.recipe.get("path") or shlex.join(c.recipe.get("command", [])),
        "objective": {
            "metric": c.objective.metric_name,
            "direction": c.objective.direction,
            "source": c.objective.source,
            "aggregate": c.objective.aggregate,
        },
        "stop_monitors": c.rules.monitors(),
        "launcher": {"name": c.launcher["name"], "why": c.launcher.get("chosen") or "chosen with --launcher"},
        "noise": noise_text(c),
        "proposer": proposer,
        "hypotheses_room": engine.planner.hypotheses_room(len(engine.owed_reruns())),
        "first_hypotheses": first,
        "preflight": preflight_data(engine),
        "baseline": baseline_launch(engine),
        "text": text,
    }


def baseline_launch(engine: Engine) -> dict:
    """The baseline's command, working directory and environment additions as its worktree will run them, and
    what the launcher submits for it (a batch script), without creating the worktree."""
    from nrl_autoresearch.core.launcher import RunSpec
    from nrl_autoresearch.core.names import BASELINE
    from nrl_autoresearch.core.redact import redact
    from nrl_autoresearch.core.stoprules import run_limit

    c = engine.campaign
    run_dir = c.run_dir(BASELINE)
    limit = run_limit(c.rules, now=time.time())
    launch = engine.recipe.launch(c.repo, run_dir, limit)
    cwd = engine.workspace.worktrees / BASELINE / launch.cwd.resolve().relative_to(c.repo.resolve())
    spec = RunSpec(
        name=engine.job_name(1),
        argv=launch.argv,
        cwd=cwd,
        log_path=run_dir / "run.log",
        run_dir=run_dir,
        env=launch.env,
        timeout_s=limit,
    )
    rendered = engine.launcher.rendered(spec)
    return {
        "command": redact(shlex.join(launch.argv)),
        "cwd": str(cwd),
        "env": launch.env,
        "submitted": redact(rendered) if rendered else None,
    }
