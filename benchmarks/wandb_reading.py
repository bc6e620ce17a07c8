"""How long does `wandb:KEY` take to read a long run's objective, next to `tensorboard:TAG` on the same scalars?

A real offline W&B run (the `wandb` package, `WANDB_MODE=offline`) and a TensorBoard event file (tensorboardX)
get the same STEPS rows of five scalars; each source then reads `val/acc` from its files, best of a few rounds,
in the same process run, so the ratio is robust to a noisy shared machine. Reading cost matters because a
running experiment is read again every second (progress, stall and divergence checks).

    python benchmarks/wandb_reading.py [--steps 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nrl_autoresearch.core.metric import MetricSource, RunOutputs
from nrl_autoresearch.metrics.tensorboard import TensorBoard
from nrl_autoresearch.metrics.wandb_files import Wandb

ROW = '{"val/acc": step / STEPS, "train/loss": 1 / (step + 1), "lr": 1e-4, "grad_norm": 0.5, "tokens": step * 1000}'
WANDB = f"""
import sys, wandb
STEPS = int(sys.argv[1])
wandb.init(project="bench")
for step in range(STEPS):
    wandb.log({ROW})
wandb.finish()
"""
TENSORBOARD = f"""
import sys
from tensorboardX import SummaryWriter
STEPS = int(sys.argv[1])
w = SummaryWriter("runs")
for step in range(STEPS):
    for key, value in {ROW}.items():
        w.add_scalar(key, value, step)
w.close()
"""


def write(folder: Path, script: str, steps: int) -> None:
    folder.mkdir()
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(folder),
        "WANDB_CONFIG_DIR": str(folder / ".config"),
        "WANDB_CACHE_DIR": str(folder / ".cache"),
    }
    subprocess.run([sys.executable, "-c", script, str(steps)], cwd=folder, env=env, check=True)


def best_read(source: MetricSource, folder: Path, rounds: int) -> tuple[float, int]:
    outputs = RunOutputs(folder / "run.log", folder, folder)
    times, points = [], 0
    for _ in range(rounds):
        start = time.perf_counter()
        reading = source.read(outputs)
        times.append(time.perf_counter() - start)
        points = len(reading.points) if reading else 0
    return min(times), points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wandb-bench-") as tmp:
        root = Path(tmp)
        write(root / "wandb", WANDB, args.steps)
        write(root / "tb", TENSORBOARD, args.steps)
        tb_s, tb_points = best_read(TensorBoard("val/acc"), root / "tb", args.rounds)
        wandb_s, wandb_points = best_read(Wandb("val/acc"), root / "wandb", args.rounds)
        size = sum(p.stat().st_size for p in (root / "wandb").rglob("*.wandb")) / 1e6
    print(f"{args.steps} steps of 5 scalars; .wandb file {size:.1f} MB")
    print(f"tensorboard:val/acc {tb_s:.3f}s ({tb_points} points)")
    print(f"wandb:val/acc       {wandb_s:.3f}s ({wandb_points} points)")
    print(f"ratio wandb/tensorboard: {wandb_s / tb_s:.2f}")


if __name__ == "__main__":
    main()
