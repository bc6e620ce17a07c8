"""autoresearch as an MCP server: the campaign operations as typed tools that return JSON, for coding agents.

Every tool is thin: parse its arguments, call `api` or the engine, return a JSON-ready dict (the shapes of the
CLI's `--json`, described by `schemas/`). Bad input comes back as one clear error result, a met stop rule as an
error carrying the stop sentence. Runs happen in a worker thread; the engine's progress lines reach the client
as progress notifications (and in the result), never on stdout, which carries the protocol.

Start it with `python -m nrl_autoresearch.interface.mcp_server` (stdio).
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
import threading
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.lowlevel import current_token
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.types import ToolAnnotations
from pydantic import Field, ValidationError

from nrl_autoresearch.core import campaign as campaigns
from nrl_autoresearch.core.campaign import Campaign
from nrl_autoresearch.core.errors import BaselineCrashed, Fault, StopConditionMet, UsageError
from nrl_autoresearch.core.git import repo_root
from nrl_autoresearch.core.hypothesis import Hypothesis, validated
from nrl_autoresearch.core.ledger import Row
from nrl_autoresearch.core.names import validate_name
from nrl_autoresearch.core.progress import Progress
from nrl_autoresearch.interface import api
from nrl_autoresearch.interface.options import INIT_TOOL, from_tool, tool_parameters
from nrl_autoresearch.interface.session_loop import SessionLoop
from nrl_autoresearch.launchers import LAUNCHERS
from nrl_autoresearch.report.build import build_report
from nrl_autoresearch.runner.engine import Engine

SCHEMAS = Path(__file__).parents[1] / "schemas"
LIVE_EVERY_S = 5.0  # a run's live line (step, elapsed, latest metric) at most this often
T = TypeVar("T")

INSTRUCTIONS = """\
autoresearch runs a research campaign on a training repository with git as the ledger: every experiment is a
branch <prefix>/<name> run in its own worktree (the person's checkout is never touched), every result a ledger row.
The loop: init_campaign (or create_demo) -> plan -> run_baseline -> try_experiment, or run_loop(confirm=true) after
the person approved the plan -> status / ledger / report. State the stop sentence after every run. Record follow-up
instructions with steer; call write_handoff before you stop; after a restart, resume_report then run_loop.
Every tool takes `repo` (a path in the repository; default: the server's working directory) and optionally
`campaign` (default: the active one)."""

Repo = Annotated[
    str,
    Field(
        description="Path of the git repository (or any folder inside it); default: the server's "
        "working directory. Absolute is safest."
    ),
]
CampaignName = Annotated[str | None, Field(description="Campaign name; default: the active campaign.")]
ExperimentName = Annotated[str, Field(description="Experiment name; the branch is <prefix>/<name>.")]
Parent = Annotated[
    str, Field(description="What it branches from: baseline, best (the best keep), an experiment or a branch.")
]
Description = Annotated[str, Field(description="One line: what this hypothesis tests and why.")]
ProposerSpec = Annotated[
    str,
    Field(
        description="catalog (open-ended, low risk first) or queue:FILE (hypotheses to test; FILE relative to repo)."
    ),
]
Workers = Annotated[int, Field(ge=1, description="Experiments in flight at once.")]
More = Annotated[
    int | None, Field(ge=1, description="Allow N more attempts past a met count rule (the person agreed).")
]
LauncherName = Annotated[Literal[tuple(LAUNCHERS)], Field(description="Where runs execute.")]  # type: ignore[valid-type]
LauncherOptions = Annotated[
    dict[str, str] | None,
    Field(
        description="Launcher settings, e.g. {'partition': 'gpu', 'account': 'a'} or {'address': 'http://head:8265'}."
    ),
]
Result = dict[str, Any]


# -- creating a campaign -----------------------------------------------------------------------------------------
def init_campaign(repo: Repo = ".", **arguments: Any) -> Result:
    """Record a campaign in the repository: objective, recipe or command, branch prefix, stop rules, launcher.
    Nothing is branched or run yet; the result lists the stop monitors and the person's uncommitted changes
    (left alone). Give exactly one of `command` or `recipe`."""
    request = api.CampaignRequest(**from_tool(arguments, INIT_TOOL))
    return api.init_data(api.create_campaign(_root(repo), request))


# its arguments: repo, then the campaign's options (options.py)
init_campaign.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [
        inspect.Parameter("repo", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=".", annotation=Repo),
        *tool_parameters(INIT_TOOL),
    ],
    return_annotation=Result,
)


def create_demo(
    dir: Annotated[str, Field(description="Where to create the demo repository (a new or empty folder).")],
    experiments: Annotated[
        int | None, Field(ge=1, description="Experiments after the baseline; default: three, then ask.")
    ] = None,
    launcher: LauncherName = "local",  # type: ignore[valid-type]  # the launchers' names, read at import
    launcher_options: LauncherOptions = None,
    baseline_repeats: Annotated[
        int | None, Field(ge=1, description="Baseline runs that measure the spread; default: as for init_campaign.")
    ] = None,
) -> Result:
    """Create a tiny NeMo-RL-shaped GRPO project as a fresh git repository, with a campaign on its recipe
    (runs take seconds on a CPU). Nothing runs yet: continue with plan, run_baseline and try_experiment."""
    return api.init_data(
        api.create_demo(
            Path(dir).expanduser().resolve(),
            experiments=experiments,
            launcher=launcher,
            launcher_options=_options(launcher_options),
            baseline_repeats=baseline_repeats,
        )
    )


def _options(options: dict[str, str] | None) -> tuple[str, ...]:
    """Launcher settings in the command line's KEY=VALUE form, which `api` parses."""
    return tuple(f"{key}={value}" for key, value in (options or {}).items())


# -- reading state -----------------------------------------------------------------------------------------------
def recipes(repo: Repo = ".") -> Result:
    """List the checkout's NeMo-RL recipes: algorithm, entrypoint, authoritative metric and direction, nodes x GPUs."""
    return api.recipes_data(_root(repo))


def preflight(repo: Repo = ".", campaign: CampaignName = None) -> Result:
    """Check the campaign can run (recipe, entrypoint, data, environment, launcher, disk, GPUs); `ok` is false
    when a blocking check failed."""
    return api.preflight_data(_engine(repo, campaign))


def status(repo: Repo = ".", campaign: CampaignName = None) -> Result:
    """Where the campaign stands: attempted rows, time left, latest and best results, and the stop sentence."""
    return api.status_data(_engine(repo, campaign).planner)


def ledger(repo: Repo = ".", campaign: CampaignName = None) -> Result:
    """Every row of the campaign's ledger: branch, commits, metric value, status (keep/discard/crash), log path."""
    return api.ledger_data(_campaign(repo, campaign))


def resume_report(repo: Repo = ".", campaign: CampaignName = None) -> Result:
    """After a restart, a compaction or a handoff: restate the objective, stop rules, latest result and session
    notes, and list every mismatch between the ledger, the git notes, the branches and the journal. Starts
    nothing; continue with run_loop."""
    engine = _engine(repo, campaign)
    data = api.resume_data(engine)
    engine.checkpoint("recovery", "restated over MCP; mismatches: " + ("; ".join(data["mismatches"]) or "none"))
    return data


def plan(
    repo: Repo = ".",
    proposer: ProposerSpec = "catalog",
    workers: Workers = 1,
    more: More = None,
    campaign: CampaignName = None,
) -> Result:
    """The plan run_loop would follow (recipe, objective, stop monitors, proposer, first hypotheses), for the
    person to confirm. Creates nothing."""
    engine = _engine(repo, campaign)
    _, text, first = api.loop_plan(engine, _proposer(repo, proposer), workers, more)
    return {
        "plan": text,
        "monitors": engine.campaign.rules.monitors(),
        "first_hypotheses": first,
        "baseline_recorded": bool(engine.baseline_rows()),
        "stop": _stop(engine),
    }


# -- running -----------------------------------------------------------------------------------------------------
async def run_baseline(repo: Repo = ".", campaign: CampaignName = None, *, ctx: Context) -> Result:
    """Run the unmodified recipe on <prefix>/baseline as row 1: every comparison needs it. Returns when the run
    ended, with its ledger row and the stop sentence; progress notifications carry the engine's lines meanwhile."""
    engine = _engine(repo, campaign)
    return await _experiment(ctx, engine, engine.baseline)


def new_experiment(
    name: ExperimentName,
    repo: Repo = ".",
    description: Description = "",
    parent: Parent = "baseline",
    campaign: CampaignName = None,
) -> Result:
    """Create the branch <prefix>/NAME and its worktree for hand edits; edit files there, then call
    try_experiment with the returned name to commit and run them."""
    validate_name(name)
    engine = _engine(repo, campaign)
    worktree = engine.prepare(name, description, parent)
    prepared = engine.journal.events("prepared")[-1]["name"]
    return {"name": prepared, "branch": engine.workspace.branch(prepared), "worktree": str(worktree)}


async def try_experiment(
    name: ExperimentName,
    repo: Repo = ".",
    set: Annotated[
        dict[str, str] | None,
        Field(description="Dotted-key changes, e.g. {'policy.optimizer.kwargs.lr': '1.0e-2'}; values are YAML text."),
    ] = None,
    patch: Annotated[str | None, Field(description="A diff file to apply, relative to the repository.")] = None,
    description: Description = "",
    parent: Parent = "baseline",
    repeats: Annotated[
        int | None, Field(ge=1, description="Runs with different seeds, judged on their mean; default: the campaign's.")
    ] = None,
    campaign: CampaignName = None,
    *,
    ctx: Context,
) -> Result:
    """Run one hypothesis on <prefix>/NAME: branch from the parent, apply the change, commit, run, judge against
    the parent's result. Returns the ledger row (keep/discard/crash) and the stop sentence."""
    hypothesis = validated(
        Hypothesis(
            name=name,
            description=description,
            parent=parent,
            sets=dict(set or {}),
            patch=str((_path(repo) / patch).resolve()) if patch else None,
            repeats=repeats,
        )
    )
    engine = _engine(repo, campaign)
    return await _experiment(ctx, engine, lambda: engine.try_(hypothesis))


async def run_loop(
    repo: Repo = ".",
    proposer: ProposerSpec = "catalog",
    steps: Annotated[
        int | None,
        Field(
            ge=1,
            description="Run at most N hypotheses in this call (a missing baseline runs first, uncounted); "
            "default: until a stop rule is met.",
        ),
    ] = None,
    workers: Workers = 1,
    more: More = None,
    confirm: Annotated[
        bool, Field(description="True once the person approved the plan (see the plan tool); without it nothing runs.")
    ] = False,
    campaign: CampaignName = None,
    *,
    ctx: Context,
) -> Result:
    """The loop, unattended: the baseline first, then one hypothesis per branch until a stop rule is met, the
    proposer runs dry or `steps` are done. Refuses without confirm=true, like the CLI without --yes. Returns the
    new rows, the summary and the report's paths."""
    engine = _engine(repo, campaign)
    loop = SessionLoop(engine, _proposer(repo, proposer), workers=workers, more=more)
    if not confirm:
        raise UsageError(
            "the plan needs the person's confirmation; nothing was created. Show them this plan, then "
            "call run_loop again with confirm=true:\n" + loop.plan
        )
    loop.start()
    before = len(engine.rows())
    progress = _Progress(ctx, engine)
    ending = await _in_thread(engine, lambda: loop.run(max_runs=steps))
    return {
        "rows": [r.to_dict() for r in engine.rows()[before:]],
        "stop": _stop(engine),
        "summary": ending.summary,
        "report": _paths(ending.report),
        "progress": progress.lines,
    }


# -- reporting and session memory --------------------------------------------------------------------------------
def finalize(
    repo: Repo = ".",
    keeps: Annotated[
        list[str] | None,
        Field(description="'best' or experiment names; each brings the keeps it was built on. Default: best."),
    ] = None,
    branch: Annotated[str | None, Field(description="The new branch; default <prefix>-final.")] = None,
    campaign: CampaignName = None,
) -> Result:
    """Replay the chosen keeps as clean commits on a new branch from the person's current branch and write PR.md
    with the evidence; the person's tree, index and branch are untouched. On a conflict nothing is created and
    `conflict` says which files: report it to the person, do not resolve it by guessing."""
    from nrl_autoresearch.runner.finalize import finalize as build

    return build(_engine(repo, campaign), tuple(keeps or ()), branch).to_dict()


def report(repo: Repo = ".", campaign: CampaignName = None) -> Result:
    """Write the campaign report (progress plot, self-contained HTML page, Markdown summary, diffs) and return
    the paths with the Markdown summary's text."""
    written = build_report(_engine(repo, campaign))
    return {**_paths(written), "summary": written["markdown"].read_text()}


def steer(
    text: Annotated[str, Field(description="The person's follow-up instruction, in their words.")],
    repo: Repo = ".",
    replace_objective: Annotated[
        bool, Field(description="True only when the person explicitly replaces the objective.")
    ] = False,
    campaign: CampaignName = None,
) -> Result:
    """Record a follow-up instruction: additive (the objective stays) unless replace_objective; proposers read it."""
    engine = _engine(repo, campaign)
    engine.steer(text, replace_objective=replace_objective)
    objective = (
        engine.campaign.options.get("goal")
        or f"{engine.campaign.objective.direction} {engine.campaign.objective.metric_name}"
    )
    return {"recorded": text, "replace_objective": replace_objective, "objective": objective}


def write_handoff(
    repo: Repo = ".",
    note: Annotated[str, Field(description="What whoever continues must know.")] = "handoff",
    campaign: CampaignName = None,
) -> Result:
    """Checkpoint the session notes now and return handoff.md: what whoever continues reads first."""
    engine = _engine(repo, campaign)
    engine.checkpoint("handoff", note)
    path = engine.memory.dir / "handoff.md"
    return {"path": str(path), "text": path.read_text()}


# -- plumbing ----------------------------------------------------------------------------------------------------
def _path(repo: str) -> Path:
    return Path(repo).expanduser()


def _root(repo: str) -> Path:
    return repo_root(_path(repo))


def _campaign(repo: str, name: str | None) -> Campaign:
    return campaigns.load(_root(repo), name)


def _engine(repo: str, name: str | None) -> Engine:
    return Engine(_campaign(repo, name), say=_to_stderr)


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _proposer(repo: str, spec: str) -> str:
    """queue:FILE with FILE relative to the repository given (the server's working directory is arbitrary)."""
    name, _, arg = spec.partition(":")
    return f"{name}:{_path(repo) / arg}" if name == "queue" and arg else spec


def _stop(engine: Engine) -> Result:
    st = engine.status()
    return {"met": st.met, "trigger": st.trigger, "sentence": st.sentence}


def _paths(written: dict[str, Path]) -> Result:
    return {k: str(v) for k, v in written.items()}


async def _experiment(ctx: Context, engine: Engine, work: Callable[[], Row]) -> Result:
    progress = _Progress(ctx, engine)
    row = await _in_thread(engine, work)
    return {"row": row.to_dict(), "stop": _stop(engine), "progress": progress.lines}


async def _in_thread(engine: Engine, work: Callable[[], T]) -> T:
    """Run engine work off the event loop. A cancelled request halts the engine, so its runs end and are recorded
    as crashes instead of running on unseen."""
    try:
        return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        engine.halt("cancelled by the MCP client")
        raise


class _Progress:
    """The engine's voice during a tool call (its `say` and its live run lines) as progress notifications. MCP wants
    the value to grow with every notification: its integer part counts attempted rows (out of the count rule, when
    there is one) and the fraction advances with each line until the next row. Every line is also kept for the
    result, for clients that do not show progress; lines past the count rule's total are kept only there."""

    def __init__(self, ctx: Context, engine: Engine):
        self.ctx, self.engine = ctx, engine
        self.lines: list[str] = []
        self._token = current_token()
        self._lock = threading.Lock()
        self._rows = len(engine.rows())
        self._step = 0
        engine.attach(say=self, progress=Progress(self, tty=False, every_s=LIVE_EVERY_S))

    def __call__(self, line: str) -> None:
        with self._lock:  # engine threads report concurrently; notifications must leave in order
            self.lines.append(line)
            rows, total = len(self.engine.rows()), self.engine.campaign.rules.max_experiments
            self._step = 1 if rows != self._rows else self._step + 1
            self._rows = rows
            value = rows + 1 - 1 / self._step
            if total is not None and value > total:
                return
            try:
                anyio.from_thread.run(self.ctx.report_progress, value, total, line, token=self._token)
            except Exception:  # a lost client must never turn a run into a crash: keep the line on stderr
                _to_stderr(line)


def _refusing(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The tool as a coroutine (a plain function runs in a worker thread, off the event loop) whose refusals become
    error results with their one clear message; a met stop rule's message is the stop sentence."""

    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Any:
        try:
            if inspect.iscoroutinefunction(fn):
                return await fn(*args, **kwargs)
            return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))
        except (UsageError, StopConditionMet, BaselineCrashed, Fault) as err:
            raise ToolError(str(err)) from None

    return run


TOOLS: list[Callable[..., Any]] = [
    init_campaign,
    create_demo,
    recipes,
    preflight,
    plan,
    run_baseline,
    new_experiment,
    try_experiment,
    run_loop,
    status,
    ledger,
    report,
    steer,
    write_handoff,
    resume_report,
    finalize,
]
OUTPUT_SCHEMAS = {
    "init_campaign": "init",
    "create_demo": "init",
    "recipes": "recipes",
    "preflight": "preflight",
    "status": "status",
    "ledger": "ledger",
    "resume_report": "resume",
}
READ_ONLY = {"recipes", "preflight", "plan", "status", "ledger"}


def load_schema(name: str) -> Result:
    """One of the JSON Schemas in `schemas/` (draft 2020-12), e.g. 'status'."""
    return json.loads((SCHEMAS / f"{name}.json").read_text())


class _Tool(Tool):
    """A tool whose bad arguments are refused with one clear message each, not the validator's report."""

    async def run(self, arguments: dict[str, Any], context: Any, convert_result: bool = False) -> Any:
        try:
            self.fn_metadata.validate_arguments(arguments)
        except ValidationError as err:
            raise ToolError(f"Error executing tool {self.name}: {bad_arguments(err)}") from None
        return await super().run(arguments, context, convert_result)


def bad_arguments(err: ValidationError) -> str:
    """'bad workers 0: input should be greater than or equal to 1; missing name: give it' from a validation error."""
    found = []
    for e in err.errors():
        where = ".".join(str(part) for part in e["loc"])
        if e["type"] == "missing":
            found.append(f"missing {where}: give it")
        else:
            found.append(f"bad {where} {json.dumps(e.get('input'), default=str)}: {e['msg'][:1].lower()}{e['msg'][1:]}")
    return "; ".join(found)


def _tool(fn: Callable[..., Any]) -> Tool:
    """A tool whose result is structured JSON, described by its schema file when it has one."""
    hints = ToolAnnotations(read_only_hint=True) if fn.__name__ in READ_ONLY else None
    tool = _Tool.from_function(_refusing(fn), annotations=hints, structured_output=True)
    if fn.__name__ in OUTPUT_SCHEMAS:
        tool.fn_metadata.output_schema = load_schema(OUTPUT_SCHEMAS[fn.__name__])
    return tool


def build_server() -> MCPServer:
    return MCPServer(
        "autoresearch",
        version=metadata.version("nrl-autoresearch"),
        instructions=INSTRUCTIONS,
        tools=[_tool(fn) for fn in TOOLS],
    )


def serve() -> None:
    """Serve over stdio (the SDK points fd 1 at stderr meanwhile, so no stray output reaches the protocol)."""
    build_server().run()


if __name__ == "__main__":
    serve()
