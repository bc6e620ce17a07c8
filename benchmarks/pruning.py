"""What do --prune and --screen save, how often do they cut a configuration that is truly better, and how fast do
the divergence and stall stops react?

Every number here is measured on real processes. Each configuration is trained once per seed: the demo's toy
GRPO (a learning rate each), and a script whose curve rises slowly to a plateau set by its configuration, doing a
fixed amount of arithmetic per step. Each run's log is watched by the engine's own RunWatch (20 checks a second,
so that the check interval stays small next to these one-second runs, as one second is next to a real training
run), with a rule or without one; a pruned run is killed there, and its CPU-seconds are the kernel's (wait4).

Compute to target: each campaign (its own seed) runs a 2-seed baseline, then configurations in a random order,
each with one seed, and stops at the first run that reaches the target; its cost is the sum of the CPU-seconds
of its runs, with the rule and without. With --screen 0.25, each configuration first runs 10 of its 40 steps (a
real shorter run) and runs in full only when the screen passes the engine's bar (runner/screening.py) against
the best configuration run in full so far. False cuts: every configuration pruned or not promoted is re-evaluated
with many seeds in full; a cut is false when its configuration's many-seed mean beats the baseline's. The engine's
rule is measured next to a looser one (one consecutive point fewer), to show what loosening costs.

    python benchmarks/pruning.py [--campaigns 20] [--seeds 3] [--reeval 8]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nrl_autoresearch.core.judge import pooled_spread
from nrl_autoresearch.core.launcher import RunSpec
from nrl_autoresearch.core.ledger import PRUNED
from nrl_autoresearch.core.metric import Census, MetricSource, Point, RunOutputs
from nrl_autoresearch.demo import RECIPE, create_repo
from nrl_autoresearch.launchers.local import LocalLauncher
from nrl_autoresearch.metrics import parse_source
from nrl_autoresearch.runner import watch as watching
from nrl_autoresearch.runner.screening import bar, passes
from nrl_autoresearch.runner.watch import PruneRule, RunWatch

RULES = {"default": {}, "looser": {"points": 2}}  # the engine's rule, and one point fewer in a row
SCREEN = 0.25  # --screen: a quarter of the 40 steps
PLATEAU = """\
import math, random, sys
rate, seed = float(sys.argv[1]), int(sys.argv[2])
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 40  # fewer: a screen, on the same curve
noise = random.Random(seed * 7919 + int(rate * 1e6))
top = 0.9 - 3.0 * (math.log10(rate) + 2) ** 2 / 10
for step in range(1, steps + 1):
    sum(math.sin(i) for i in range(60000))  # the step's work
    print(f"step {step}/{steps}", flush=True)
    if step % 4 == 0:
        print(f"val: {top * (1 - math.exp(-step / 12)) + noise.gauss(0, 0.01):.4f}", flush=True)
"""


@dataclass(frozen=True)
class Shape:
    """A family of configurations: how to run one, how its curve is read, the baseline's, the target."""

    name: str
    configs: list[float]
    baseline: float
    target: float
    source: MetricSource
    argv: Callable[[float, int, Path, int | None], list[str]]  # config, seed, folder, steps (None: all 40)
    cwd: Path


@dataclass(frozen=True)
class Run:
    curve: list[Point]
    cpu_s: float
    pruned: bool


def run(shape: Shape, config: float, seed: int, rule: PruneRule | None, folder: Path, steps: int | None = None) -> Run:
    """One real run, its log watched by the engine's RunWatch; killed when the watch ends it (pruned, or diverged
    as the engine would end it in every campaign)."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "run.log"
    before = Census.take(folder, folder)  # what earlier runs left is not this run's, as in the engine
    with log.open("w") as out:
        proc = subprocess.Popen(
            shape.argv(config, seed, folder, steps),
            cwd=shape.cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
    outputs = RunOutputs(log, folder, folder, before)
    watch = RunWatch(shape.source, outputs, "objective", stall=None, prune=rule)
    pruned = False
    while True:  # wait4, not Popen.poll: the kernel's CPU time of this process, read as it is reaped
        pid, _, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        reason = watch.check()
        if reason:
            os.killpg(proc.pid, signal.SIGKILL)
            _, _, usage = os.wait4(proc.pid, 0)
            pruned = reason.startswith(PRUNED)
            break
        time.sleep(0.01)
    proc.returncode = 0  # reaped by wait4 above
    reading = shape.source.read(outputs)
    return Run(reading.points if reading else [], usage.ru_utime + usage.ru_stime, pruned)


def final(done: Run) -> float:
    """The run's last value; a run that diverged before its first evaluation is the worst there is."""
    return done.curve[-1].value if done.curve else float("-inf")


def would_prune(curve: list[Point], rule: PruneRule) -> bool:
    """Whether the rule fires anywhere on a full run's curve: a run it leaves alone costs what the full run cost
    (same configuration, same seed, same curve), so only these are run again with the rule."""
    watch = RunWatch(None, None, "objective", stall=None, prune=rule)  # type: ignore[arg-type]
    return any(watch.prune_check(curve[:k], None) for k in range(1, len(curve) + 1))


def demo_shape(repo: Path) -> Shape:
    lrs = [2.0e-3] + [round(10**x, 6) for x in [-3.7, -3.4, -3.0, -2.5, -2.2, -2.0, -1.8, -1.6, -1.4, -1.2, -1.0, 0.0]]
    return Shape(
        "demo",
        lrs,
        2.0e-3,
        0.9,
        parse_source("nemo-rl:val:accuracy"),
        lambda lr, seed, folder, steps: (
            [
                sys.executable,
                "examples/run_grpo.py",
                "--config",
                RECIPE,
                "checkpointing.enabled=false",
                f"policy.optimizer.kwargs.lr={lr}",
                f"grpo.seed={seed}",
                f"logger.log_dir={folder}/logs",
            ]
            + ([f"grpo.max_num_steps={steps}"] if steps else [])
        ),
        repo,
    )


def plateau_shape(folder: Path) -> Shape:
    script = folder / "plateau.py"
    script.write_text(PLATEAU)
    rates = [round(10**x, 6) for x in [-3.7, -3.4, -3.0, -2.5, -2.2, -2.0, -1.8, -1.6, -1.4, -1.2, -1.0]]
    return Shape(
        "plateau",
        rates,
        round(10**-2.5, 6),
        0.85,
        parse_source("line:val"),
        lambda rate, seed, _folder, steps: (
            [sys.executable, str(script), str(rate), str(seed)] + ([str(steps)] if steps else [])
        ),
        folder,
    )


def measure(shape: Shape, seeds: int, folder: Path) -> dict:
    """Full runs of every configuration, its runs under each rule, and its screens."""
    full = {
        (c, s): run(shape, c, s, None, folder / f"full-{c}-{s}") for c in shape.configs for s in range(1, seeds + 1)
    }
    base = [full[(shape.baseline, s)] for s in (1, 2)]
    spread = pooled_spread([[final(r) for r in base]])
    curves = [[(p.step, p.value) for p in r.curve] for r in base]
    ruled = {}
    for name, knobs in RULES.items():
        rule = PruneRule(curves, spread.sd if spread else None, maximize=True, **knobs)
        ruled[name] = {
            key: run(shape, *key, rule, folder / f"{name}-{key[0]}-{key[1]}")
            if key[0] != shape.baseline and would_prune(r.curve, rule)
            else r
            for key, r in full.items()
        }
    screens = {
        key: run(shape, *key, None, folder / f"screen-{key[0]}-{key[1]}", steps=round(40 * SCREEN))
        for key in full
        if key[0] != shape.baseline
    }
    return {
        "full": full,
        "ruled": ruled,
        "screens": screens,
        "curves": curves,
        "spread": spread.sd if spread else None,
        "folder": folder,
        "finals": {},
    }


def many_seed_mean(shape: Shape, found: dict, config: float, seeds: int, reeval: int) -> float:
    """A configuration's final value averaged over `reeval` seeds, run in full (cached)."""
    if config not in found["finals"]:
        extra = [
            final(run(shape, config, s, None, found["folder"] / f"reeval-{config}-{s}"))
            for s in range(seeds + 1, reeval + 1)
        ]
        found["finals"][config] = statistics.fmean(
            [final(found["full"][(config, s)]) for s in range(1, seeds + 1)] + extra
        )
    return found["finals"][config]


def campaigns(shape: Shape, found: dict, runs: dict, n: int, seeds: int, screened: bool = False) -> dict:
    """CPU-seconds to the first run reaching the target, over `n` seeded campaigns, with these runs' costs; with
    `screened`, each configuration's screen first, and its full run only when the screen passes the bar of the best
    configuration run in full so far (the baseline's two runs, or one run of a better configuration)."""
    base = sum(found["full"][(shape.baseline, s)].cpu_s for s in (1, 2))
    spent, missed, reached, cut = [], [], 0, []
    for campaign in range(n):
        rng = random.Random(campaign)
        order = rng.sample([c for c in shape.configs if c != shape.baseline], k=len(shape.configs) - 1)
        cost, lost, best = base, 0.0, [found["curves"]]
        leader, lead = shape.baseline, statistics.fmean(c[-1][1] for c in found["curves"])
        for config in order:
            key = (config, 1 + campaign % seeds)
            if screened:
                screen = found["screens"][key]
                cost += screen.cpu_s
                last = screen.curve[-1] if screen.curve else None
                if last is None or not passes(last.value, bar(best, last.step, found["spread"], True), True):
                    lost += screen.cpu_s
                    cut.append((config, leader))
                    continue
            done = runs[key]
            cost += done.cpu_s
            if done.pruned:
                cut.append((config, shape.baseline))
            elif done.curve and done.curve[-1].value >= shape.target:
                reached += 1
                break
            elif done.curve and done.curve[-1].value > statistics.fmean(c[-1][1] for c in found["curves"]):
                best.append([[(p.step, p.value) for p in done.curve]])
                leader, lead = (config, done.curve[-1].value) if done.curve[-1].value > lead else (leader, lead)
            lost += done.cpu_s
        spent.append(cost)
        missed.append(lost)
    return {"cpu": sum(spent), "missed": sum(missed), "reached": reached, "cut": cut}


def report(shape: Shape, found: dict, n: int, seeds: int, reeval: int) -> None:
    without = campaigns(shape, found, found["full"], n, seeds)
    startup = min(r.cpu_s for r in found["full"].values())
    print(
        f"{shape.name}: {n} campaigns, {without['cpu'] / n:.2f} CPU-s each to reach {shape.target} without "
        f"pruning ({without['reached']}/{n} reached it); {without['missed'] / without['cpu']:.0%} of that went to "
        f"runs that missed it (the most any early stop could save); the cheapest full run took {startup:.2f} CPU-s"
    )
    baseline = many_seed_mean(shape, found, shape.baseline, seeds, reeval)
    arms = [(f"--prune, {name} rule ({_knobs(name)})", runs, False) for name, runs in found["ruled"].items()]
    for label, runs, screened in arms + [(f"--screen {SCREEN}", found["full"], True)]:
        got = campaigns(shape, found, runs, n, seeds, screened)
        mean = {c: many_seed_mean(shape, found, c, seeds, reeval) for pair in got["cut"] for c in pair}
        false = sum(mean[c] > baseline for c, _ in got["cut"])
        beyond = sum(mean[c] > mean[leader] for c, leader in got["cut"])
        print(
            f"  {label}: compute to target saved {1 - got['cpu'] / without['cpu']:.0%} ({got['reached']}/{n} "
            f"reached it); {len(got['cut'])} runs cut short in the campaigns, {false} of them of a configuration "
            f"truly better than the baseline, {beyond} better than the configuration it was compared with "
            f"(means over {reeval} seeds)"
        )


def _knobs(name: str) -> str:
    knobs = {"share": watching.PRUNE_SHARE, "points": watching.PRUNE_POINTS, **RULES[name]}
    return f"after {knobs['share']:.0%} of training, {knobs['points']} points in a row"


def reaction(kind: str) -> float:
    """Seconds from the NaN (or from the stall limit after the last output) to the end of the run."""
    last = 'float("nan")' if kind == "nan" else "0.1"
    script = (
        f"import time\nfor s in range(1, 4):\n    print(f'step {{s}}/100 loss {{1/s if s < 3 else {last}}}', "
        "flush=True)\n    time.sleep(0.3)\ntime.sleep(60)\n"
    )
    limit = 2.0 if kind == "stall" else None
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        spec = RunSpec("bench", [sys.executable, "-c", script], run_dir, run_dir / "run.log", run_dir, timeout_s=120)
        job = LocalLauncher(grace_s=2).submit(spec)
        watch = RunWatch(parse_source("line:val"), RunOutputs(spec.log_path, run_dir, run_dir), "val", stall=limit)
        result = job.wait(poll_s=0.1, should_stop=watch.check)
        assert ("diverged" if kind == "nan" else "stalled") in result.reason, result.reason
        return time.time() - spec.log_path.stat().st_mtime - (limit or 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--campaigns", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3, help="seeds per configuration the campaigns draw from")
    parser.add_argument("--reeval", type=int, default=8, help="seeds a pruned configuration is re-evaluated with")
    args = parser.parse_args()
    watching.CHECK_EVERY_S = 0.05
    with tempfile.TemporaryDirectory() as tmp:
        shapes = [demo_shape(create_repo(Path(tmp) / "demo")), plateau_shape(Path(tmp))]
        for shape in shapes:
            report(shape, measure(shape, args.seeds, Path(tmp) / shape.name), args.campaigns, args.seeds, args.reeval)
    watching.CHECK_EVERY_S = 1.0
    print(f"divergence: run ended {reaction('nan'):.2f}s after the NaN")
    print(f"stall: run ended {reaction('stall'):.2f}s after the 2s stall limit")


if __name__ == "__main__":
    main()
