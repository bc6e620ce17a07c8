"""What does --prune save, how often does it cut a configuration that is truly better, and how fast do the
divergence and stall stops react?

Compute to target: each campaign (its own seed) draws configurations at random, runs them after a baseline of two
seeds, and stops at the first run that reaches the target. Every configuration is trained for real once per seed
(the demo's toy GRPO, and a second script whose curve rises slowly then plateaus); its validation curve and CPU
time are recorded, and the engine's own prune rule (watch.RunWatch.prune_check) is replayed on the curve, charging
a pruned run the share of its steps it ran. False prunes: a configuration whose mean over all seeds beats the
baseline's mean, pruned in some campaign. Reaction times: real processes on the local launcher, watched by the
engine's watch, ending at a NaN and at a silence.

    python benchmarks/pruning.py [--campaigns 6] [--configs 12] [--target 0.9]
"""

from __future__ import annotations

import argparse
import math
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nrl_autoresearch.core.launcher import RunSpec
from nrl_autoresearch.core.metric import Point, RunOutputs
from nrl_autoresearch.demo import RECIPE, create_repo
from nrl_autoresearch.launchers.local import LocalLauncher
from nrl_autoresearch.metrics import parse_source
from nrl_autoresearch.runner.watch import PruneRule, RunWatch

_STEP = re.compile(r"Step (\d+)/(\d+)")
_ACC = re.compile(r"• Accuracy: ([0-9.]+)")
SEEDS = (1, 2, 3, 4)


def demo_curve(repo: Path, lr: float, seed: int) -> tuple[list[Point], float]:
    """One real toy-GRPO run: its validation curve and the CPU-seconds it used."""
    before = _children_cpu()
    out = subprocess.run([sys.executable, "examples/run_grpo.py", "--config", RECIPE, "checkpointing.enabled=false",
                          f"policy.optimizer.kwargs.lr={lr}", f"grpo.seed={seed}"], cwd=repo, capture_output=True,
                         text=True).stdout
    points, step = [], 0
    for line in out.splitlines():
        found = _STEP.search(line)
        step = int(found.group(1)) if found else step
        acc = _ACC.search(line)
        if acc:
            points.append(Point(step, float(acc.group(1))))
    return points, _children_cpu() - before


def plateau_curve(rate: float, seed: int, steps: int = 40) -> tuple[list[Point], float]:
    """The second script's shape: a slow rise to a plateau set by the configuration, with per-step noise."""
    noise = random.Random(seed * 7919 + int(rate * 1e6))
    top = 0.9 - 3.0 * (math.log10(rate) + 2) ** 2 / 10
    points = [Point(s, top * (1 - math.exp(-s / 12)) + noise.gauss(0, 0.01)) for s in range(4, steps + 1, 4)]
    return points, 0.01 * steps  # a nominal CPU cost per step


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pruned_share(curve: list[Point], rule: PruneRule) -> float | None:
    """Replay the engine's rule point by point: the share of the run done when it is pruned, or None."""
    watch = RunWatch(source=None, outputs=None, metric="val", stall=None, prune=rule)  # type: ignore[arg-type]
    for k in range(1, len(curve) + 1):
        if watch.prune_check(curve[:k], None):
            return k / len(curve)
    return None


def campaigns(runs: dict, baseline: str, target: float, n: int, configs: int) -> dict:
    """Compute to the first run reaching `target`, with and without pruning, over `n` seeded campaigns."""
    base_curves = [[(p.step, p.value) for p in runs[baseline][s][0]] for s in SEEDS[:2]]
    finals = {c: statistics.fmean(runs[c][s][0][-1].value for s in SEEDS) for c in runs}
    better = {c for c in runs if finals[c] > finals[baseline]}
    full, pruned_cost, false, pruned_count, reached = [], [], 0, 0, 0
    lost = lost_pruned = 0.0  # compute on runs that did not reach the target
    for campaign in range(n):
        rng = random.Random(campaign)
        order = rng.sample([c for c in runs if c != baseline], k=min(configs, len(runs) - 1))
        rule = PruneRule(base_curves, None, maximize=True)
        spent = spent_pruned = sum(runs[baseline][s][1] for s in SEEDS[:2])
        for config in order:
            curve, cpu = runs[config][SEEDS[campaign % len(SEEDS)]]
            share = pruned_share(curve, rule)
            spent += cpu
            spent_pruned += cpu * (share or 1.0)
            if share is not None:
                pruned_count += 1
                false += config in better
            if curve[-1].value >= target and share is None:
                reached += 1
                break
            lost += cpu
            lost_pruned += cpu * (share or 1.0)
        full.append(spent)
        pruned_cost.append(spent_pruned)
    saved = 1 - sum(pruned_cost) / sum(full)
    return {"saved": saved, "lost_saved": 1 - lost_pruned / lost if lost else 0.0, "false": false, "pruned": pruned_count, "reached": reached, "campaigns": n,
            "better": len(better)}


def reaction(kind: str) -> float:
    """Seconds from the NaN (or from the stall limit after the last output) to the end of the run."""
    last = 'float("nan")' if kind == "nan" else "0.1"
    script = (f"import time\nfor s in range(1, 4):\n    print(f'step {{s}}/100 loss {{1/s if s < 3 else {last}}}', "
              "flush=True)\n    time.sleep(0.3)\ntime.sleep(60)\n")
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
    parser.add_argument("--campaigns", type=int, default=6)
    parser.add_argument("--configs", type=int, default=12, help="configurations drawn per campaign")
    parser.add_argument("--target", type=float, default=0.9, help="the demo's target val accuracy (as in proposers_to_target.py)")
    args = parser.parse_args()
    lrs = [2.0e-3] + [round(10 ** x, 6) for x in [-3.7, -3.4, -3.0, -2.5, -2.2, -2.0, -1.8, -1.6, -1.4, -1.2, -1.0, 0.0]]
    with tempfile.TemporaryDirectory() as tmp:
        repo = create_repo(Path(tmp) / "demo")
        demo = {lr: {s: demo_curve(repo, lr, s) for s in SEEDS} for lr in lrs}
    demo = {lr: runs for lr, runs in demo.items() if all(c for c, _ in runs.values())}
    plateau = {r: {s: plateau_curve(r, s) for s in SEEDS} for r in lrs[1:-1]}
    for name, runs, base, target in (("demo", demo, 2.0e-3, args.target), ("plateau", plateau, round(10 ** -2.5, 6), 0.85)):
        found = campaigns(runs, base, target, args.campaigns, args.configs)
        print(f"{name}: compute to target saved by --prune {found['saved']:.0%} "
              f"({found['reached']}/{found['campaigns']} campaigns reached {target}), "
              f"{found['lost_saved']:.0%} of the compute on runs that did not reach it; "
              f"{found['pruned']} runs pruned, {found['false']} of them truly better configurations "
              f"({found['better']} better than the baseline)")
    print(f"divergence: run ended {reaction('nan'):.2f}s after the NaN")
    print(f"stall: run ended {reaction('stall'):.2f}s after the 2s stall limit")


if __name__ == "__main__":
    main()
