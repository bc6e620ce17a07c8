"""autoresearch: research campaigns on a training recipe, with git as the ledger.

\b
  autoresearch demo                   a whole campaign on a built-in toy GRPO project
  autoresearch init --recipe R.yaml   (NeMo-RL) or --command "python train.py" --metric M --maximize
  autoresearch run --yes              baseline first, then one hypothesis per branch until a stop rule is met
  autoresearch try NAME --set K=V     one hypothesis by hand: branch, change, commit, run, record
  autoresearch status | report        where the campaign stands; the plot, HTML and Markdown report
  autoresearch resume                 after a disconnect or a kill: restate, verify, continue
  autoresearch finalize               the winning changes as clean commits on a new branch, with PR.md
\b
Each experiment runs in its own git worktree (your working tree, index and branch are never touched), gets
one row in an untracked TSV (reports/auto_research_results.tsv) mirrored in git notes, and is judged keep,
discard or crash by rule. The stop sentence is printed before and after every run.
Exit status: 0 done, 2 bad input (nothing created), 3 a stop condition is already met,
4 the baseline has no valid result (the diagnosis says what to do).
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from nrl_autoresearch import __version__
from nrl_autoresearch.core.errors import BaselineCrashed, StopConditionMet, UsageError, fault_of
from nrl_autoresearch.interface.options import INIT, PLAN, PREFLIGHT, click_options, from_cli
from nrl_autoresearch.launchers import LAUNCHERS

if TYPE_CHECKING:
    from nrl_autoresearch.core.campaign import Campaign
    from nrl_autoresearch.interface import api
    from nrl_autoresearch.interface.session_loop import Ending
    from nrl_autoresearch.runner.engine import Engine


# what starting the command line never imports (--version, --help, status): the commands that need one import it
STARTUP_FREE = ("hydra", "omegaconf", "ruamel", "matplotlib", "mcp", "ray", "optuna", "mlflow", "starlette")


class _Group(click.Group):
    """Turns our refusals (bad input, a met stop rule, a baseline without a result, a fault of the machine) and
    click's own parse errors into their exit statuses with one clear line."""

    def make_context(self, *args, **kwargs) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as err:
            _parse_error(err)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.UsageError as err:
            _parse_error(err)
        except UsageError as err:
            click.echo(f"autoresearch: error: {err}", err=True)
            ctx.exit(2)
        except StopConditionMet as err:
            click.echo(str(err))
            ctx.exit(3)
        except BaselineCrashed as err:
            click.echo(f"autoresearch: {err}", err=True)
            ctx.exit(4)
        except Exception as err:
            fault = fault_of(err)
            if fault is None:
                raise
            click.echo(f"autoresearch: {fault}", err=True)
            ctx.exit(fault.exit_code)
        except KeyboardInterrupt:
            click.echo("autoresearch: interrupted: the running experiment was ended and recorded", err=True)
            ctx.exit(130)


def _parse_error(err: click.UsageError) -> NoReturn:
    """click's complaint (it names the option or argument) on one line with where to read more, not the usage
    dump; a bare group still shows its help."""
    if isinstance(err, click.exceptions.NoArgsIsHelpError):
        raise err
    names: list[str] = []
    ctx = err.ctx
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    command = " ".join(["autoresearch", *reversed(names)])
    message = " ".join(err.format_message().split()).rstrip(".")
    click.echo(f"autoresearch: error: {message} (see '{command} --help')", err=True)
    sys.exit(err.exit_code)


def _repo(path: str | None) -> Path:
    from nrl_autoresearch.core.git import repo_root

    return repo_root(Path(path) if path else Path.cwd())


def _load(repo: str | None, name: str | None) -> Campaign:
    from nrl_autoresearch.core import campaign as campaigns

    return campaigns.load(_repo(repo), name)


def _engine(c: Campaign, *, quiet: bool = False) -> Engine:
    """The campaign's engine, imported when a command needs one (--version and --help start without it); quiet:
    without the engine's progress lines, for commands that print their own result."""
    from nrl_autoresearch.core.progress import Progress
    from nrl_autoresearch.runner.engine import Engine

    return Engine(c, say=lambda _: None) if quiet else Engine(c, progress=Progress())


def _emit(data, as_json: bool, text: str) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True) if as_json else text)


repo_option = click.option(
    "--repo", type=click.Path(file_okay=False), help="The repository (default: the one you stand in)."
)
campaign_option = click.option("--campaign", "campaign_name", help="Campaign name (default: the active one).")
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.group(cls=_Group, help=__doc__)
@click.version_option(version=__version__, prog_name="autoresearch")
def main() -> None:
    previous = signal.signal(signal.SIGTERM, _interrupt)
    # restored when the command ends, for a process that calls main and lives on
    click.get_current_context().call_on_close(lambda: signal.signal(signal.SIGTERM, previous))


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _request(values: dict, command: str) -> api.CampaignRequest:
    from nrl_autoresearch.interface import api

    return api.CampaignRequest(**from_cli(values, command))


@main.command()
@repo_option
@click_options(INIT)
@json_option
def init(repo, as_json, **options):
    """Record a campaign in this repository (nothing is branched or run yet)."""
    from nrl_autoresearch.interface import api

    try:
        c = api.create_campaign(_repo(repo), _request(options, INIT))
    except UsageError as err:
        if as_json:  # the refusal as JSON too, for scripts reading stdout
            click.echo(json.dumps({"created": False, "error": str(err)}))
        raise
    data = api.init_data(c)
    _emit(data, as_json, _init_text(c, data))


def _init_text(c: Campaign, data: dict) -> str:
    from nrl_autoresearch.report.text import recipe_lines

    lines = [
        f"campaign {c.name}: branches under {c.prefix}/",
        f"  objective: {c.objective.direction} {c.objective.metric_name} ({c.objective.source}, {c.objective.aggregate})",
        *recipe_lines(c),
        f"  launcher: {c.launcher['name']}" + (f" (auto: {c.launcher['chosen']})" if c.launcher.get("chosen") else ""),
        "  stop rules:",
        *(f"    {m}" for m in c.rules.monitors()),
        f"  ledger: {c.ledger}  (untracked)",
        f"  your branch: {data['user_branch'] or '(detached)'}; the baseline starts from your current commit when it "
        f"runs (now {c.base_commit[:10]})",
    ]
    if c.options.get("notify"):
        lines.append(f"  notify: {', '.join(c.options['notify'])}")
    if c.options.get("mlflow"):
        lines.append(f"  MLflow: {c.options['mlflow']}, experiment {c.name}")
    if c.options.get("brev"):
        lines.append(
            f"  Brev: experiments under {c.options['brev']['campaign_root']}, caches in {c.options['brev']['cache']}"
        )
    if data["unrelated_changes"]:
        lines += [
            "  your uncommitted changes (left alone; experiments start from the last commit):",
            *(f"    {d}" for d in data["unrelated_changes"]),
        ]
    lines.append("next: autoresearch baseline")
    return "\n".join(lines)


@main.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False), help="Where to create the demo repository.")
@click.option("--experiments", type=int, help="Experiments after the baseline (default: three, then ask).")
@click.option("--launcher", type=click.Choice(sorted(LAUNCHERS)), default="local", show_default=True)
@click.option(
    "--launcher-option",
    "-L",
    "launcher_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="A launcher setting, e.g. -L address=http://127.0.0.1:8265 for Ray.",
)
@click.option("--workers", type=int, default=1, show_default=True, help="Experiments in flight at once.")
@click.option("--baseline-repeats", type=int, help="Baseline runs that measure the spread (default: as for init).")
def demo(directory, experiments, launcher, launcher_options, workers, baseline_repeats):
    """Create a tiny NeMo-RL-shaped GRPO project and run a whole campaign on it (about 5 s on a 2-core machine).

    Without --dir the project is a new folder autoresearch-demo-<date>-<time> in the current directory."""
    from nrl_autoresearch.demo import default_dir
    from nrl_autoresearch.interface import api

    dest = Path(directory).resolve() if directory else default_dir(Path.cwd())
    c = api.create_demo(
        dest,
        experiments=experiments,
        launcher=launcher,
        launcher_options=launcher_options,
        baseline_repeats=baseline_repeats,
    )
    click.echo(f"demo repository: {dest}")
    _run_loop(_engine(c), "catalog", yes=True, more=None, workers=workers)
    click.echo(f"session notes: {dest / 'session'}")


@main.command()
@repo_option
@campaign_option
def baseline(repo, campaign_name):
    """Create <prefix>/baseline and run the unmodified recipe as row 1."""
    with _engine(_load(repo, campaign_name)) as engine:
        engine.baseline()


@main.command("try")
@click.argument("name")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="A change to apply (repeatable).")
@click.option("--patch", type=click.Path(dir_okay=False), help="A diff to apply on the branch.")
@click.option("--desc", default="", help="One line: what this hypothesis tests.")
@click.option("--parent", default="baseline", show_default=True, help="baseline | best | an experiment or branch.")
@click.option("--repeats", type=int, help="Runs with different seeds, judged on their mean (default: the campaign's).")
@click.option(
    "--repeat",
    "again",
    is_flag=True,
    help="Run a configuration already tried once more, on its branch, judged with its earlier runs.",
)
@repo_option
@campaign_option
def try_(name, sets, patch, desc, parent, repeats, again, repo, campaign_name):
    """Run one hypothesis on <prefix>/NAME: change, commit, run, record. A change that changes nothing, or
    repeats a configuration already tried, is refused (exit 2) unless --repeat asks for it."""
    from nrl_autoresearch.core.hypothesis import Hypothesis, parse_sets, validated

    hypothesis = validated(
        Hypothesis(
            name=name,
            description=desc,
            parent=parent,
            sets=parse_sets(sets),
            patch=str(Path(patch).resolve()) if patch else None,
            repeats=repeats,
        )
    )
    with _engine(_load(repo, campaign_name)) as engine:
        engine.try_(hypothesis, repeat=again)


@main.command()
@click.argument("name")
@click.option("--desc", default="", help="One line: what this hypothesis tests.")
@click.option("--parent", default="baseline", show_default=True)
@repo_option
@campaign_option
def new(name, desc, parent, repo, campaign_name):
    """Create <prefix>/NAME and its worktree for hand edits; print its path and what comes next."""
    from nrl_autoresearch.core.names import validate_name

    validate_name(name)
    engine = _engine(_load(repo, campaign_name))
    path = engine.prepare(name, desc, parent)
    click.echo(
        f"{path}\nnext: edit the files there (branch {engine.workspace.branch(path.name)}), then run "
        f"'autoresearch try {path.name}' to commit, run and record them"
    )


@main.command()
@click.option(
    "--proposer",
    "proposer_spec",
    default="catalog",
    show_default=True,
    help="queue:FILE (directed) | catalog (open-ended, low risk first) | search:SPACE.yaml (Optuna TPE) | "
    'agent:"COMMAND" (an external coding agent edits the code) | llm[:MODEL] (an OpenAI-compatible endpoint) | '
    "random (a random knob and value: a yardstick for the others).",
)
@click.option("--yes", is_flag=True, help="Confirm the plan non-interactively.")
@click.option(
    "--continue", "more", type=int, help="Allow N more attempts after a met count rule (the default rule asks)."
)
@click.option("--workers", type=int, default=1, show_default=True, help="Experiments in flight at once.")
@repo_option
@campaign_option
def run(proposer_spec, yes, more, workers, repo, campaign_name):
    """The loop, unattended: baseline first, then one hypothesis per branch until a stop rule is met."""
    _run_loop(_engine(_load(repo, campaign_name)), proposer_spec, yes=yes, more=more, workers=workers)


def _run_loop(engine: Engine, proposer_spec: str, *, yes: bool, more: int | None, workers: int) -> None:
    """State the plan, get it confirmed, loop, summarise: shared by run, resume and demo."""
    from nrl_autoresearch.interface.session_loop import SessionLoop

    with engine.writer.held():
        loop = SessionLoop(engine, proposer_spec, workers=workers, more=more)
        click.echo(loop.plan)
        _confirm(yes)
        loop.start()
        loop.run(ended=_ended)


def _ended(ending: Ending) -> None:
    written = ending.report
    click.echo(ending.summary)
    click.echo(f"report: {written['html']} (plot {written['png'].name}, summary {written['markdown'].name})")


def _confirm(yes: bool) -> None:
    """Nothing that branches or launches happens without a confirmed plan."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("the plan needs confirmation and there is no terminal to ask: pass --yes to confirm it")
    if not click.confirm("Proceed with this plan?", default=False):
        raise UsageError("plan not confirmed: nothing was created")


@main.command()
@click.option("--html", type=click.Path(dir_okay=False), help="Where to write the HTML report.")
@click.option("--png", type=click.Path(dir_okay=False), help="Where to write the progress plot.")
@click.option("--markdown", type=click.Path(dir_okay=False), help="Where to write the Markdown summary.")
@repo_option
@campaign_option
@json_option
def report(html, png, markdown, repo, campaign_name, as_json):
    """Write the campaign report: a progress plot, a self-contained HTML page, a Markdown summary."""
    from nrl_autoresearch.report.build import build_report

    engine = _engine(_load(repo, campaign_name), quiet=True)
    written = build_report(engine, html=_path(html), png=_path(png), markdown=_path(markdown))
    _emit({k: str(v) for k, v in written.items()}, as_json, "\n".join(f"{k}: {v}" for k, v in written.items()))


@main.command()
@click.option(
    "--from",
    "sources",
    multiple=True,
    metavar="best|BRANCH",
    help="The keeps to carry (repeatable; default: best); each brings the keeps it was built on.",
)
@click.option("--branch", help="The new branch (default: <prefix>-final).")
@repo_option
@campaign_option
def finalize(sources, branch, repo, campaign_name):
    """A new branch from yours with the chosen keeps' changes as clean commits, and a PR.md with the evidence;
    your working tree, index and branch are untouched. A conflict is reported (exit 1), never guessed."""
    from nrl_autoresearch.runner.finalize import finalize as build

    done = build(_engine(_load(repo, campaign_name), quiet=True), tuple(sources), branch)
    if done.conflict:
        click.echo(done.conflict, err=True)
        sys.exit(1)
    for row, clean in done.commits:
        click.echo(f"  [{row.index}] {row.branch.rsplit('/', 1)[1]}: " + (clean[:12] if clean else "no file change"))
    click.echo(f"branch {done.branch} from {done.start[:12]}: {sum(1 for _, c in done.commits if c)} commit(s)")
    click.echo(f"PR description: {done.pr_path}")


@main.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0 picks a free port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Where to listen (only this machine by default).")
@repo_option
@campaign_option
def dashboard(port, host, repo, campaign_name):
    """Serve the campaign live in a browser, read-only: objective, stop sentence, progress, runs in flight, the
    sortable ledger with logs and diffs; the same state as JSON at /api/state. Ctrl-C ends it."""
    from nrl_autoresearch import dashboard as board

    root = _repo(repo)
    name = _load(repo, campaign_name).name
    sock = board.bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"dashboard of {name}: http://{shown}:{sock.getsockname()[1]}/  (Ctrl-C to stop)")
    board.serve(root, campaign_name, sock)


def _path(value: str | None) -> Path | None:
    return Path(value).resolve() if value else None


@main.command()
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Tiny settings to apply (repeatable).")
@click.option("--limit", default="10m", show_default=True, help="Wall-clock limit of the smoke run.")
@repo_option
@campaign_option
@json_option
def smoke(sets, limit, repo, campaign_name, as_json):
    """Run the recipe with tiny settings to check the plumbing: never a ledger row, never a verdict."""
    from nrl_autoresearch.core.hypothesis import parse_sets
    from nrl_autoresearch.core.stoprules import parse_duration

    with _engine(_load(repo, campaign_name), quiet=True) as engine:
        found = engine.smoke(parse_sets(sets), parse_duration(limit, what="--limit"))
    metric = found["metric"]
    lines = [
        f"smoke run: {found['ended']} in {found['seconds']} s ({found['command']})",
        f"  log: {found['log_path']} ({'written' if found['log_written'] else 'EMPTY or missing'})",
        f"  metric {metric['name']}: "
        + (
            f"{metric['value']:.6g} from {metric['source']}"
            if metric["value"] is not None
            else f"not found ({metric['source']})"
        ),
        f"  steps: {found['steps'] or 'no step headers'}"
        + (f", {found['seconds_per_step']} s per step (setup included)" if found["seconds_per_step"] else ""),
        *([f"  failure: {found['failure']}"] if found["failure"] else []),
        "  proved: " + "; ".join(found["proved"]),
        "plumbing works (a smoke run proves the wiring, not an idea)"
        if found["succeeded"] and metric["value"] is not None
        else "plumbing problem: see the log",
    ]
    _emit(found, as_json, "\n".join(lines))
    sys.exit(0 if found["succeeded"] and metric["value"] is not None else 1)


@main.command()
@repo_option
@click_options(PREFLIGHT)
@json_option
def preflight(repo, as_json, **options):
    """Check the campaign can run: recipe, entrypoint, data, environment, model, launcher, disk, GPUs (exit 1 if
    blocked); with init's options, before init."""
    from nrl_autoresearch.interface import api

    data = api.preflight_data(_engine(_campaign_or_request(repo, options, PREFLIGHT), quiet=True))
    _emit(data, as_json, "\n".join(_preflight_lines(data)))
    sys.exit(0 if data["ok"] else 1)


def _preflight_lines(data: dict) -> list[str]:
    mark = {"pass": "[x]", "fail": "[ ]", "warning": "[!]", "unknown": "[?]"}
    lines = [
        f"{mark[c['status']]} {c['item']}"
        + (f": {c['detail']}" if c["detail"] else "")
        + (" (warning)" if c["status"] == "warning" else "")
        for c in data["checks"]
    ]
    return [*lines, "preflight: ready" if data["ok"] else "preflight: blocked"]


@main.command()
@click.option("--proposer", "proposer_spec", default="catalog", show_default=True, help="As for 'autoresearch run'.")
@click.option(
    "--count", type=int, default=3, show_default=True, help="Hypotheses to show (at most what the stop rules allow)."
)
@repo_option
@click_options(PLAN)
@json_option
def plan(proposer_spec, count, repo, as_json, **options):
    """What 'run' would do, before confirmation, creating nothing: of this campaign, or, with init's options, of
    the campaign init would record."""
    from nrl_autoresearch.interface import api

    data = api.plan_data(_engine(_campaign_or_request(repo, options, PLAN), quiet=True), proposer_spec, count)
    _emit(data, as_json, _plan_text(data))


def _campaign_or_request(repo: str | None, options: dict, command: str) -> Campaign:
    """The campaign init would record from these options (in memory only), or the recorded one."""
    from nrl_autoresearch.interface import api

    if options["recipe"] or options["command"]:
        return api.create_campaign(_repo(repo), _request(options, command), save=False)
    return _load(repo, options["name"])


def _plan_text(data: dict) -> str:
    launcher, base = data["launcher"], data["baseline"]
    lines = [
        data["text"],
        f"  launcher choice: {launcher['why']}",
        "  preflight:",
        *(f"    {line}" for line in _preflight_lines(data["preflight"])),
        "  baseline command:",
        f"    cd {base['cwd']}",
        *(f"    export {k}={shlex.quote(v)}" for k, v in base["env"].items()),
        f"    {base['command']}",
    ]
    if base["submitted"]:
        lines += ["  submitted as:", *(f"    {line}" for line in base["submitted"].splitlines())]
    return "\n".join(lines)


@main.group(invoke_without_command=True)
@repo_option
@json_option
@click.pass_context
def recipes(ctx, repo, as_json):
    """List the checkout's NeMo-RL recipes: algorithm, entrypoint, authoritative metric, nodes x GPUs."""
    from nrl_autoresearch.interface import api

    if ctx.invoked_subcommand:
        return
    found = api.recipes_data(_repo(repo))["recipes"]
    lines = [
        f"{r['recipe']}  {r['algorithm']}  {r['entrypoint']}  {r['metric']} ({r['direction']})  "
        f"{r['nodes']}n x {r['gpus_per_node']}g"
        if "error" not in r
        else f"{r['recipe']}  error: {r['error']}"
        for r in found
    ]
    _emit({"recipes": found}, as_json, "\n".join(lines))


@recipes.command("show")
@click.argument("path")
@click.argument("overrides", nargs=-1)
@repo_option
@json_option
def recipes_show(path, overrides, repo, as_json):
    """Print one recipe fully resolved, with NeMo-RL-style OVERRIDES applied, as the entrypoint would see it."""
    import yaml

    from nrl_autoresearch.recipes import nemo_config as nc

    root = _repo(repo)
    full = Path(path) if Path(path).is_absolute() else root / path
    if not full.is_file():
        raise UsageError(f"recipe {path!r} does not exist in {root}")
    resolved = nc.load_resolved(full, list(overrides))
    _emit(resolved, as_json, yaml.safe_dump(resolved, sort_keys=False).rstrip())


@main.command()
@repo_option
@campaign_option
@json_option
def status(repo, campaign_name, as_json):
    """Where the campaign stands: latest result, counts, time left, the stop sentence."""
    from nrl_autoresearch.core.stoprules import format_duration
    from nrl_autoresearch.interface import api
    from nrl_autoresearch.report.markdown import counts
    from nrl_autoresearch.runner.context import Context
    from nrl_autoresearch.runner.planner import Planner

    c = _load(repo, campaign_name)
    planner = Planner(Context(c, say=lambda _: None))  # reading only: the engine's running parts are not built
    data = api.status_data(planner)
    rows, top, st = planner.context.rows(), planner.context.best_row(), planner.status()
    left = data["remaining_seconds"]
    lines = [
        f"campaign {c.name} ({c.prefix}/): {c.objective.direction} {c.objective.metric_name}",
        f"  your branch: {data['current_branch'] or '(detached)'}",
    ]
    if rows:
        last = rows[-1]
        shown = "crash" if last.status == "crash" else f"{last.metric_value:.6g} ({last.status})"
        lines.append(f"  latest: [{last.index}] {last.branch} {shown}")
    if top:
        lines.append(f"  best keep: {top.branch} {top.metric_value:.6g}")
    lines.append(f"  rows: {counts(rows)}")
    if left is not None:
        lines.append(f"  time left: {format_duration(left)}")
    lines += _base_text(data["base"], data["current_branch"])
    gpu = data["gpu_hours"]
    lines.append(
        f"  GPU-hours: {gpu['used']:.3g}"
        + (f" of {gpu['budget']:g}" if gpu["budget"] else "")
        + (f" ({gpu['gpus_per_run']:g} GPU(s) per run)" if gpu["gpus_per_run"] else " (CPU-only runs: none)")
        + (f"; {data['pruned']} run(s) pruned" if data["pruned"] else "")
    )
    lines.append(st.sentence)
    _emit(data, as_json, "\n".join(lines))


def _base_text(base: dict, branch: str | None) -> list[str]:
    """Where experiments start, and what to do about the person's newer commits."""
    start = base["commit"][:10]
    if base["follows_your_commits"]:
        return [f"  base: your current commit (now {start}), followed until the baseline is recorded"]
    if not base["commits_past"]:
        return [f"  base: {start}"]
    you = branch or "HEAD"
    return [
        f"  base: {start}; your branch {you} is {base['commits_past']} commit(s) past it, which experiments do "
        f"not have: build on them with 'autoresearch try NAME --parent {you}'"
    ]


@main.group(invoke_without_command=True)
@repo_option
@campaign_option
@json_option
@click.pass_context
def ledger(ctx, repo, campaign_name, as_json):
    """Print the campaign's rows (the TSV, or JSON)."""
    from nrl_autoresearch.core.ledger import COLUMNS, Ledger
    from nrl_autoresearch.interface import api

    if ctx.invoked_subcommand:
        return
    c = _load(repo, campaign_name)
    rows = Ledger(c.ledger_path).rows(c.prefix)
    if as_json:
        _emit(api.ledger_data(c), True, "")
    else:
        click.echo("\t".join(COLUMNS))
        for row in rows:
            click.echo(row.to_line(), nl=False)


@ledger.command()
@repo_option
@campaign_option
def rebuild(repo, campaign_name):
    """Rewrite the TSV from the git notes (after it was lost or damaged)."""
    from nrl_autoresearch.core.git import Git
    from nrl_autoresearch.core.ledger import Ledger, Notes
    from nrl_autoresearch.core.ledger import rebuild as rebuild_ledger
    from nrl_autoresearch.core.writer import CampaignLock

    c = _load(repo, campaign_name)
    with CampaignLock(c.dir, c.name).held():
        count = rebuild_ledger(Ledger(c.ledger_path), Notes(Git(c.repo)))
    click.echo(f"rebuilt {c.ledger} from git notes: {count} rows")


@ledger.command()
@repo_option
@campaign_option
@json_option
def check(repo, campaign_name, as_json):
    """Report disagreements between the TSV, the git notes and the branches (exit 1 when there are any)."""
    problems = _engine(_load(repo, campaign_name), quiet=True).verify()
    _emit(
        {"consistent": not problems, "problems": problems},
        as_json,
        "\n".join(problems) if problems else "ledger, notes and branches agree",
    )
    sys.exit(1 if problems else 0)


@main.command()
@click.argument("text")
@click.option("--replace-objective", is_flag=True, help="Replace the campaign's stated objective with TEXT.")
@repo_option
@campaign_option
def steer(text, replace_objective, repo, campaign_name):
    """Record a follow-up instruction (additive unless --replace-objective); proposers read it."""
    engine = _engine(_load(repo, campaign_name), quiet=True)
    engine.steer(text, replace_objective=replace_objective)
    click.echo(("objective replaced: " if replace_objective else "steering recorded (the objective stays): ") + text)


@main.command()
@repo_option
@campaign_option
def pause(repo, campaign_name):
    """Halt the loop between experiments: runs in flight finish, no new run starts."""
    _engine(_load(repo, campaign_name), quiet=True).set_control("pause")
    click.echo("pause requested: the loop starts no new run; continue later with 'autoresearch resume'")


@main.command()
@repo_option
@campaign_option
def stop(repo, campaign_name):
    """Halt the loop now: runs in flight are ended and recorded as crashes."""
    _engine(_load(repo, campaign_name), quiet=True).set_control("stop")
    click.echo("stop requested: runs in flight are being ended; continue later with 'autoresearch resume'")


@main.command()
@click.option("--report-only", is_flag=True, help="Restate and verify, then stop (no run is started).")
@click.option("--proposer", "proposer_spec", help="Override the proposer recorded by the last run.")
@click.option("--yes", is_flag=True, help="Confirm continuing non-interactively.")
@repo_option
@campaign_option
@json_option
def resume(report_only, proposer_spec, yes, repo, campaign_name, as_json):
    """Pick the campaign up after a disconnect, a compaction or a kill: restate, verify, continue."""
    from nrl_autoresearch.core.progress import Progress
    from nrl_autoresearch.interface import api
    from nrl_autoresearch.runner.engine import Engine

    c = _load(repo, campaign_name)
    engine = Engine(c, say=(lambda _: None) if as_json else click.echo, progress=None if as_json else Progress())
    data = api.resume_data(engine)
    latest = data["latest"]
    shown = latest and ("" if latest["status"] == "crash" else f"{latest['metric_value']:.6g}")
    text = "\n".join(
        [
            f"objective: {c.options.get('goal') or c.objective.direction + ' ' + c.objective.metric_name} ({c.objective.source})",
            "stop rules: " + "; ".join(data["stop_rules"]),
            f"current branch: {data['current_branch'] or '(detached)'}",
            "latest result: "
            + (f"[{latest['index']}] {latest['branch']} {latest['status']} {shown}".rstrip() if latest else "none yet"),
            data["stop"]["sentence"],
            f"session notes: {data['handoff'] or 'none found'}",
            *(f"mismatch: {p}" for p in data["mismatches"]),
        ]
    )
    _emit(data, as_json, text)
    engine.checkpoint(
        "recovery",
        f"resumed ({'report only' if report_only else 'continuing'}); "
        f"{len(data['mismatches'])} mismatches: " + "; ".join(data["mismatches"]),
    )
    if report_only:
        return
    engine.recover()
    _run_loop(
        engine,
        proposer_spec or c.options.get("proposer", "catalog"),
        yes=yes,
        more=None,
        workers=c.options.get("workers", 1),
    )


@main.group()
def skill():
    """The auto-research skill for coding agents, expressed through this tool's commands."""


@skill.command("install")
@click.option(
    "--into",
    type=click.Choice(["claude", "agents"]),
    default="claude",
    show_default=True,
    help="claude: .claude/skills/autoresearch; agents: .agents/skills/autoresearch",
)
@click.option("--force", is_flag=True, help="Replace a different SKILL.md already there.")
@repo_option
def skill_install(into, force, repo):
    """Install SKILL.md into a project so that coding agents load it."""
    source = Path(__file__).parents[1] / "skill" / "SKILL.md"
    dest = _repo(repo) / f".{into}" / "skills" / "autoresearch" / "SKILL.md"
    if dest.exists() and dest.read_text() != source.read_text() and not force:
        raise UsageError(f"{dest} exists and differs from this version's skill: pass --force to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(source.read_text())
    click.echo(f"installed {dest}")


@main.command()
def mcp():
    """Serve the tools to coding agents over MCP (stdio): init, plan, baseline, try, run, status, ledger, report."""
    from nrl_autoresearch.interface.mcp_server import serve

    serve()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
