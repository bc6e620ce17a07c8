"""How much faster is a local campaign with experiments in parallel?

Six experiments of 5 s each (plus the baseline), once with one worker and once with three, in fresh
repositories during the same process run:

    python benchmarks/parallel_speedup.py [--seconds 5] [--experiments 6] [--workers 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAIN = 'import json, time; c = json.load(open("p.json")); time.sleep(c["sleep"]); print("score:", c["x"])\n'


def campaign(root: Path, seconds: float, experiments: int, workers: int) -> float:
    root.mkdir()
    (root / "train.py").write_text(TRAIN)
    (root / "p.json").write_text(json.dumps({"x": 0, "sleep": seconds}))
    queue = root.parent / f"{root.name}-queue.json"
    queue.write_text(json.dumps([{"name": f"e{i}", "set": {"x": i + 1}} for i in range(experiments)]))
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "train.py", "p.json"],
        ["-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", "start"],
    ):
        subprocess.run(["git", "-C", str(root), *args], check=True)
    ar = [sys.executable, "-m", "nrl_autoresearch"]
    subprocess.run(
        [
            *ar,
            "init",
            "--command",
            f"{sys.executable} train.py",
            "--metric",
            "score",
            "--maximize",
            "--params-file",
            "p.json",
            "--max-experiments",
            str(experiments + 1),
        ],
        cwd=root,
        check=True,
        capture_output=True,
    )
    subprocess.run([*ar, "baseline"], cwd=root, check=True, capture_output=True)
    start = time.perf_counter()
    subprocess.run(
        [*ar, "run", "--yes", "--workers", str(workers), "--proposer", f"queue:{queue}"],
        cwd=root,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--experiments", type=int, default=6)
    parser.add_argument("--workers", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        serial = campaign(Path(tmp) / "serial", args.seconds, args.experiments, 1)
        parallel = campaign(Path(tmp) / "parallel", args.seconds, args.experiments, args.workers)
    print(f"{args.experiments} experiments of {args.seconds:g} s")
    print(f"1 worker:  {serial:.1f} s")
    print(f"{args.workers} workers: {parallel:.1f} s  (speed-up {serial / parallel:.2f}x; ideal {args.workers}x)")


if __name__ == "__main__":
    main()
