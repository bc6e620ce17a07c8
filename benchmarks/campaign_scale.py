"""Does a campaign's cost stay flat as its ledger grows?

For each ledger size, a fresh campaign of a tiny training project gets a real baseline, then synthetic but valid
rows: experiment commits and branches, their git notes, their TSV lines (written by `Row.to_line`) and journal
events, in one `git fast-import` (running thousands of experiments would measure the training, not the campaign).
Then it times, as a person types them: three `autoresearch try`, `ledger check`, `resume --report-only` and
`report`. Ratios are against the smallest size, measured in the same run. Each figure is wall-clock seconds and,
in brackets, CPU seconds of the command and the processes it ran (the steadier figure on a shared machine);
ratios are of CPU seconds. See process_cost.py.

    python benchmarks/campaign_scale.py [--sizes 2,300,2000] [--tries 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from process_cost import Cost, cost, installed_env

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the synthetic campaigns the tests grow too
from tests.synthetic import grow  # noqa: E402

TRAIN = """\
import json
cfg = json.load(open("params.json"))
print(f"val_score: {1.0 - abs(cfg['lr'] - 0.1):.4f}")
"""
READ_ONLY = (("ledger", "check"), ("resume", "--report-only"), ("report",))
ENV: dict[str, str] = {}


def git(repo: Path, *args: str, stream: str | None = None) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, input=stream
    ).stdout


def cli(repo: Path, *args: str) -> Cost:
    """What `autoresearch ARGS` costs in `repo` (a fresh interpreter, as a person runs it; `ledger check` exits 1
    when it finds disagreements)."""
    return cost([sys.executable, "-m", "nrl_autoresearch", *args], repo, ENV, ok=(0, 1))


def campaign(root: Path, rows: int, tries: int) -> Path:
    """A repository whose campaign holds a real baseline and `rows - 1` synthetic discarded experiments."""
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "b@example.org")
    git(root, "config", "user.name", "Bench")
    (root / "train.py").write_text(TRAIN)
    (root / "params.json").write_text('{"lr": 0.01}\n')
    git(root, "add", "train.py", "params.json")
    git(root, "commit", "-qm", "start")
    cli(
        root,
        "init",
        "--command",
        f"{sys.executable} train.py",
        "--metric",
        "val_score",
        "--maximize",
        "--params-file",
        "params.json",
        "--campaign",
        "scale",
        "--max-experiments",
        str(rows + tries + 10),
    )
    cli(root, "baseline")
    grow(root, rows - 1)
    return root


def measure(repo: Path, tries: int) -> dict[str, Cost]:
    """The cost of `tries` tries in a row, then of each read-only command."""
    costs = {
        f"{tries} tries": sum((cli(repo, "try", f"t{n}", "--set", f"lr=0.{n + 2}") for n in range(tries)), Cost(0, 0))
    }
    costs.update({" ".join(args): cli(repo, *args) for args in READ_ONLY})
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2,300,2000", help="Ledger sizes in rows, the first is the baseline.")
    parser.add_argument("--tries", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        ENV.update(installed_env(Path(tmp) / "bytecode"))
        measure(campaign(Path(tmp) / "warm-up", sizes[0], args.tries), args.tries)  # writes every module's bytecode
        for size in sizes:
            results[size] = measure(campaign(Path(tmp) / f"r{size}", size, args.tries), args.tries)
    base = results[sizes[0]]
    print(f"{'rows':>6}  " + "  ".join(f"{name:>30}" for name in base))
    for size in sizes:
        print(f"{size:>6}  " + "  ".join(_shown(results[size][k], base[k]).rjust(30) for k in base))
    print(f"(wall s [cpu s] cpu ratio vs {sizes[0]} rows)")


def _shown(cost: Cost, base: Cost) -> str:
    return f"{cost.wall:6.2f} [{cost.cpu:5.2f}] {cost.cpu / base.cpu:5.2f}x"


if __name__ == "__main__":
    main()
