"""Random SIGKILLs against a real campaign: is anything lost, duplicated, leaked or left behind?

Each round starts the engine (`run`, then `resume`), lets it work for a random moment and kills it with
SIGKILL; the runs it launched keep going in their own sessions and the next round's recovery picks them up.
A last `resume` finishes the campaign unkilled. Then the ledger is checked against git:

    python benchmarks/fault_injection.py --rounds 20 --workers 1
    python benchmarks/fault_injection.py --rounds 20 --workers 2
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

TRAIN = """\
import json, time
cfg = json.load(open("params.json"))
time.sleep(cfg["sleep"])
print(f"val_score: {1.0 - abs(cfg['lr'] - 0.1):.4f}")
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def tool(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nrl_autoresearch", *args], cwd=repo, capture_output=True, text=True)


def make_campaign(root: Path, experiments: int, rng: random.Random) -> tuple[Path, Path]:
    """A tiny project, a campaign counting `experiments` rows, and a queue with more hypotheses than that."""
    repo = root / "project"
    repo.mkdir()
    (repo / "train.py").write_text(TRAIN)
    (repo / "params.json").write_text(json.dumps({"lr": 0.01, "sleep": 0.3}) + "\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "train.py", "params.json")
    git(repo, "-c", "user.name=R", "-c", "user.email=r@example.org", "commit", "-qm", "initial")
    queue = root / "queue.json"
    queue.write_text(
        json.dumps([{"name": f"e{i}", "set": {"lr": round(rng.uniform(0.0, 0.3), 4)}} for i in range(experiments * 2)])
    )
    proc = tool(
        repo,
        "init",
        "--command",
        f"{sys.executable} train.py",
        "--metric",
        "val_score",
        "--maximize",
        "--params-file",
        "params.json",
        "--campaign",
        "faults",
        "--max-experiments",
        str(experiments),
        "--grace",
        "1s",
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return repo, queue


def kill_rounds(repo: Path, queue: Path, rounds: int, workers: int, rng: random.Random) -> int:
    """Start the engine, SIGKILL it after a random moment; returns how many kills landed on a live engine."""
    kills = 0
    for n in range(rounds):
        args = ["run", "--proposer", f"queue:{queue}", "--workers", str(workers)] if n == 0 else ["resume"]
        engine = subprocess.Popen(
            [sys.executable, "-m", "nrl_autoresearch", *args, "--yes"],
            cwd=repo,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(rng.uniform(0.2, 3.0))
        if engine.poll() is None:
            engine.send_signal(signal.SIGKILL)
            kills += 1
        engine.wait()
    return kills


def verdict(repo: Path, experiments: int) -> dict:
    """The figures: rows, gaps, duplicates, notes, ledger check, byte-exact rebuild, leftovers."""
    finished = tool(repo, "resume", "--yes")
    rows = json.loads(tool(repo, "ledger", "--json").stdout)["rows"]
    indexes = [r["index"] for r in rows]
    noted = sum(
        any(
            json.loads(line)["row"].split("\t")[0] == str(r["index"])
            for line in git(repo, "notes", "--ref", "autoresearch", "show", r["commit"]).splitlines()
        )
        for r in rows
    )
    ledger = repo / "reports" / "auto_research_results.tsv"
    before = ledger.read_bytes()
    rebuilt = tool(repo, "ledger", "rebuild").returncode == 0 and ledger.read_bytes() == before
    worktrees = repo / "reports" / "auto_research" / "faults" / "worktrees"
    return {
        "final resume exit": finished.returncode,
        "rows": len(rows),
        "expected rows": experiments,
        "missing indexes": sorted(set(range(1, max(indexes, default=0) + 1)) - set(indexes)),
        "duplicate indexes": len(indexes) - len(set(indexes)),
        "rows with their note on their commit": noted,
        "crash rows (runs cut by a kill)": sum(r["status"] == "crash" for r in rows),
        "ledger check": "agrees" if tool(repo, "ledger", "check").returncode == 0 else "DISAGREES",
        "rebuilt from notes byte for byte": rebuilt,
        "leftover worktrees": len(list(worktrees.iterdir())) if worktrees.exists() else 0,
        "leftover run processes": len(end_marked(repo)),
    }


def end_marked(repo: Path) -> list[int]:
    """Processes still carrying one of this campaign's run markers (there should be none); ended here."""
    prefix = str(repo / "reports" / "auto_research" / "faults") + "#"
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("AUTORESEARCH_RUN", "").startswith(prefix):
                found.append(proc.pid)
                proc.kill()
        except psutil.Error:
            continue
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--experiments", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="autoresearch-faults-") as tmp:
        repo, queue = make_campaign(Path(tmp), args.experiments, rng)
        started = time.time()
        kills = kill_rounds(repo, queue, args.rounds, args.workers, rng)
        figures = {
            "rounds": args.rounds,
            "workers": args.workers,
            "SIGKILLs": kills,
            **verdict(repo, args.experiments),
            "seconds": round(time.time() - started),
        }
    for key, value in figures.items():
        print(f"{key}: {value}")
    lost = figures["missing indexes"] or figures["duplicate indexes"] or figures["rows"] != figures["expected rows"]
    sys.exit(1 if lost or figures["ledger check"] != "agrees" or not figures["rebuilt from notes byte for byte"] else 0)


if __name__ == "__main__":
    main()
