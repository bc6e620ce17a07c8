"""The options of a campaign, declared once: the command line's options, the MCP tools' arguments and the Python
API's request (with its validation) are all generated from `CAMPAIGN`, so an option is added in one place.

Defaults are read from the modules that own them (the judge's z, the engine's seed base, the launcher's grace),
never restated here. This module imports nothing heavy: the command line builds its options from it at start-up.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.judge import SEED_BASE, Z_DEFAULT
from nrl_autoresearch.core.launcher import GRACE_S
from nrl_autoresearch.core.metric import AGGREGATES
from nrl_autoresearch.core.stoprules import format_duration
from nrl_autoresearch.launchers import CHOICES
from nrl_autoresearch.runner.brev import EPHEMERAL

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
INIT, PLAN, PREFLIGHT, INIT_TOOL = "init", "plan", "preflight", "init_campaign"
CAMPAIGN_USERS = frozenset({INIT, PLAN, PREFLIGHT, INIT_TOOL})


@dataclass(frozen=True)
class Option:
    """One setting: its request field, type, default and help, and how each face spells it.

    `kind` is str, int, float or bool. A bool with the default None is an on/off pair (`off` names the other
    side); a bool defaulting to False or True is a flag (`--no-...` when True). `repeatable` collects a list;
    `pairs` takes KEY=VALUE items on the command line and an object in a tool call. `minimum` is a lower bound,
    `above` makes it strict. `flag` and `tool_name` are the command line's and the tools' spellings when they
    are not the field's name; `tool_help` replaces `help` where the command line's wording does not fit a tool."""

    name: str
    kind: type
    help: str
    default: Any = None
    choices: tuple[str, ...] | None = None
    repeatable: bool = False
    pairs: bool = False
    minimum: float | None = None
    above: bool = False
    flag: str | None = None
    off: str | None = None
    short: str | None = None
    metavar: str | None = None
    tool_name: str | None = None
    tool_help: str | None = None
    commands: frozenset[str] = CAMPAIGN_USERS

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def tool_arg(self) -> str:
        return self.tool_name or self.name

    @property
    def many(self) -> bool:
        return self.repeatable or self.pairs

    def empty(self) -> Any:
        """The request's value when nothing is given."""
        return () if self.many else self.default


CAMPAIGN: tuple[Option, ...] = (
    Option("command", str, 'Any training command, e.g. "python train.py --epochs 3" (or give a recipe).'),
    Option("recipe", str, "A NeMo-RL recipe YAML, relative to the repository (see 'autoresearch recipes')."),
    Option("entrypoint", str, "NeMo-RL entrypoint (default: chosen from the recipe like NeMo-RL's test suites)."),
    Option(
        "runner",
        str,
        "What runs the NeMo-RL entrypoint (default: uv run, or what NeMo-RL's test script for "
        "the recipe uses, ${NRL_PYTHON:-python}).",
    ),
    Option(
        "metric",
        str,
        "Objective metric name (default for a recipe: its checkpointing.metric_name); "
        "KIND:NAME (wandb:val/acc) also names its source.",
    ),
    Option(
        "maximize",
        bool,
        "Whether higher is better (default for a recipe: its own direction).",
        off="--minimize",
        tool_help="True when higher is better; default: the recipe's own direction.",
    ),
    Option(
        "metric_source",
        str,
        "tensorboard:TAG | regex:PATTERN | line:KEY | jsonl:FIELD | nemo-rl:METRIC | mlflow:METRIC | wandb:KEY",
    ),
    Option("aggregate", str, " | ".join(AGGREGATES), default=AGGREGATES[0]),
    Option("params_file", str, "YAML/JSON/TOML file in the repo that the command reads; --set edits it."),
    Option(
        "set_style",
        str,
        "'flags' appends --set KEY=VALUE as '--KEY VALUE' (recorded in a committed file).",
        default="file",
        choices=("file", "flags"),
    ),
    Option("prefix", str, "Branch prefix (default autoresearch/<date>-<campaign>)."),
    Option("name", str, "Campaign name (default: the prefix's last part).", flag="--campaign", tool_name="campaign"),
    Option("max_experiments", int, "Stop after N attempted rows (baseline and crashes count).", minimum=1),
    Option("budget", str, "Campaign time budget, e.g. 10h (an absolute deadline from now)."),
    Option("per_experiment", str, "Wall-clock limit of every run, e.g. 1h (an overrun is a crash)."),
    Option("target", str, "Stop when the objective reaches it, e.g. 'val:accuracy>=0.8'."),
    Option("stop", str, "All in one sentence: '50 experiments or 10h total, 1h each'."),
    Option("min_delta", float, "Smallest gain that counts as a keep.", default=0.0, minimum=0),
    Option(
        "launcher",
        str,
        "Where runs happen; auto: local when the GPUs are here, else Slurm, Kubernetes or Ray.",
        default=CHOICES[0],
        choices=CHOICES,
    ),
    Option(
        "launcher_options",
        str,
        "A launcher setting, e.g. -L partition=gpu -L account=a, -L mode=interactive, -L address=http://h:8265.",
        pairs=True,
        flag="--launcher-option",
        short="-L",
        metavar="KEY=VALUE",
        tool_help="Launcher settings, e.g. {'partition': 'gpu', 'account': 'a'} or {'address': 'http://head:8265'}.",
    ),
    Option("grace", str, "Time between SIGTERM and SIGKILL when a run is stopped.", default=format_duration(GRACE_S)),
    Option(
        "gpus_per_experiment",
        int,
        "Disjoint GPU sets (CUDA_VISIBLE_DEVICES) for local experiments run in parallel.",
        default=0,
        minimum=0,
    ),
    Option(
        "baseline_repeats",
        int,
        "Run the baseline K times with different seeds to measure the run-to-run spread "
        "(default: 6, 4 or 2, the most that cost at most a quarter of the budget, when the "
        "seed can vary; else 1).",
        minimum=1,
    ),
    Option(
        "repeats", int, "Run every hypothesis K times with different seeds and judge the mean.", default=1, minimum=1
    ),
    Option(
        "z",
        float,
        f"The keep bar's one-sided normal quantile at each look: {Z_DEFAULT} lets 4% of null changes "
        "through (about 5% over the looks; Student's t for the spread's degrees of freedom).",
        default=Z_DEFAULT,
        minimum=0,
        above=True,
    ),
    Option(
        "sequential",
        bool,
        "Judge single runs in looks: a promising run gets up to two more with other seeds before its verdict.",
        default=True,
    ),
    Option("confirm", bool, "Re-run each new best keep with another seed before building on it.", default=False),
    Option(
        "seed_flag",
        str,
        "For --command: the flag that sets the seed, for repeats (--seed, or seed: the dashes are added).",
    ),
    Option(
        "protected",
        str,
        "Files hypotheses must not change (the evaluation and metric code); agents are refused them.",
        repeatable=True,
        flag="--protect",
        metavar="GLOB",
        tool_help="Globs of files hypotheses must not change (evaluation and metric code).",
    ),
    Option("brev", bool, "Brev layout: outputs and caches on the volume (default: detected).", off="--no-brev"),
    Option("brev_volume", str, "The Brev volume.", default=str(EPHEMERAL)),
    Option(
        "seed_base",
        int,
        "Run k >= 2 of a configuration uses seed BASE + k - 1 (the same seeds for every configuration).",
        default=SEED_BASE,
    ),
    Option(
        "stall",
        str,
        "End a run with no new output, step or metric point for this long (a crash); auto: the "
        "larger of 30m and 5x the longest gap between steps; off.",
        default="auto",
    ),
    Option("prune", bool, "End a run whose curve is clearly worse than the reference's (a discard).", default=False),
    Option(
        "screen",
        float,
        "Run each new hypothesis for this share of the steps first (0 < SHARE < 1); promote to a "
        "full run only those within noise of the best at the same step (both are rows).",
        minimum=0,
        above=True,
        metavar="SHARE",
    ),
    Option("gpu_hours", float, "GPU-hour budget (elapsed x GPUs held; CPU-only runs use none).", minimum=0, above=True),
    Option(
        "notify",
        str,
        "A webhook (Slack-compatible JSON POST) told of the baseline, each new best, stopped runs "
        "and the end (repeatable); a URL that carries a credential is given as env:NAME, the "
        "variable holding it.",
        repeatable=True,
        metavar="env:NAME|URL",
    ),
    Option(
        "mlflow",
        str,
        "Log every row as an MLflow run in an experiment named after the campaign (needs the mlflow extra).",
        metavar="URI",
    ),
)


def used_by(command: str, schema: Iterable[Option] = CAMPAIGN) -> list[Option]:
    return [o for o in schema if command in o.commands]


# -- the request ---------------------------------------------------------------------------------------------------
def request_of(command: str, schema: Iterable[Option] = CAMPAIGN) -> Callable[[type[T]], type[T]]:
    """Turn a class into a frozen dataclass with one field per option of `command`, checked on construction."""
    options = used_by(command, schema)

    def build(cls: type[T]) -> type[T]:
        cls.__annotations__ = {o.name: _request_type(o) for o in options}
        for o in options:
            setattr(cls, o.name, field(default=o.empty()))
        cls.__post_init__ = lambda self: validate(options, self)  # type: ignore[attr-defined]
        return dataclass(frozen=True)(cls)

    return build


def _request_type(o: Option) -> Any:
    if o.many:
        return tuple[str, ...]
    return o.kind if o.default is not None else o.kind | None


def validate(options: Iterable[Option], request: Any) -> None:
    """Bounds and choices, with the option's name in the message: the same refusal from every face."""
    for o in options:
        value = getattr(request, o.name)
        if value is None or o.many:
            continue
        if o.choices and value not in o.choices:
            raise UsageError(f"bad {o.cli_flag} {value!r}: use one of {', '.join(o.choices)}")
        if o.minimum is not None and not _within(o, value):
            bound = f"above {o.minimum:g}" if o.above else f"{o.minimum:g} or more"
            raise UsageError(f"bad {o.cli_flag} {value}: give a number {bound}")


def _within(o: Option, value: float) -> bool:
    assert o.minimum is not None
    return math.isfinite(value) and (value > o.minimum if o.above else value >= o.minimum)


# -- the command line ------------------------------------------------------------------------------------------------
def click_options(command: str, schema: Iterable[Option] = CAMPAIGN) -> Callable[[F], F]:
    """A decorator giving a click command the options of `command`, each passed under its field's name."""
    import click

    def params(o: Option) -> dict[str, Any]:
        if o.kind is bool and o.default is None:
            return {"default": None}
        if o.kind is bool:
            return {"is_flag": True, "default": o.default, "show_default": o.default}
        kind = click.Choice(o.choices) if o.choices else o.kind
        shown = o.default is not None and not o.many
        return {
            "type": kind,
            "default": o.default if shown else None,
            "show_default": shown,
            "multiple": o.many,
            "metavar": o.metavar,
        }

    def decls(o: Option) -> list[str]:
        if o.kind is bool and (o.default is None or o.default is True):
            off = o.off or "--no-" + o.cli_flag[2:]
            return [f"{o.cli_flag}/{off}", o.name]
        return [d for d in (o.cli_flag, o.short, o.name) if d]

    def apply(f: F) -> F:
        for o in reversed(used_by(command, schema)):
            f = click.option(*decls(o), help=o.help, **params(o))(f)
        return f

    return apply


def from_cli(values: Mapping[str, Any], command: str, schema: Iterable[Option] = CAMPAIGN) -> dict[str, Any]:
    """The request's fields out of click's parameters (repeated options as tuples)."""
    return {o.name: tuple(values[o.name]) if o.many else values[o.name] for o in used_by(command, schema)}


# -- the MCP tools -------------------------------------------------------------------------------------------------
def tool_parameters(command: str, schema: Iterable[Option] = CAMPAIGN) -> list[inspect.Parameter]:
    """Keyword parameters, typed for the MCP SDK (pydantic), of the options of `command`."""
    from pydantic import Field

    found = []
    for o in used_by(command, schema):
        described = Field(
            description=o.tool_help or o.help, gt=o.minimum if o.above else None, ge=None if o.above else o.minimum
        )
        hint = Annotated[_tool_type(o), described]  # type: ignore[valid-type]
        default = None if o.many else o.default
        found.append(inspect.Parameter(o.tool_arg, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint))
    return found


def _tool_type(o: Option) -> Any:
    if o.pairs:
        return dict[str, str] | None
    if o.repeatable:
        return list[str] | None
    kind: Any = Literal[o.choices] if o.choices else o.kind
    return kind if o.default is not None else kind | None


def from_tool(arguments: Mapping[str, Any], command: str, schema: Iterable[Option] = CAMPAIGN) -> dict[str, Any]:
    """The request's fields out of a tool call's arguments: objects become KEY=VALUE items, lists tuples."""
    fields = {}
    for o in used_by(command, schema):
        value = arguments.get(o.tool_arg, None if o.many else o.default)
        if o.pairs:
            value = tuple(f"{key}={item}" for key, item in (value or {}).items())
        elif o.repeatable:
            value = tuple(value or ())
        fields[o.name] = value
    return fields
