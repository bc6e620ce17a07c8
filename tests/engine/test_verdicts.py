"""Honest verdicts: baseline spread from seeded repeats, hypotheses judged on their mean, confirmation of new
best keeps, symptom triage that steers the catalog, crash triage that fixes and reruns, failures before a run."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from nrl_autoresearch.core import campaign as campaigns
from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.core.judge import Z_DEFAULT, Spread, keep_bar
from nrl_autoresearch.proposers.catalog import CatalogProposer
from nrl_autoresearch.runner.engine import Engine
from tests.helpers import PY, cli, git, ledger_rows, make_repo

# the score is the effect of `lr` plus a noise term fixed by the seed (no seed flag: the recipe's own seed)
NOISY = """\
import json, sys
seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 0
noise = {0: 0.05, 1001: -0.05, 1002: 0.0, 1003: 0.02, 1004: -0.02}.get(seed, 0.0)
lr = json.load(open("p.json"))["lr"]
fluke = 0.1 if lr == 0.02 and seed == 0 else 0.0  # one lucky run of one configuration
print(f"score: {0.5 + lr + noise + fluke:.4f}")
"""


def noisy_repo(tmp_path: Path, *init: str) -> Path:
    repo = make_repo(tmp_path / "r", {"t.py": NOISY, "p.json": '{"lr": 0.0}\n'})
    cli(
        repo,
        "init",
        "--command",
        f"{PY} t.py",
        "--metric",
        "score",
        "--maximize",
        "--params-file",
        "p.json",
        "--campaign",
        "n",
        "--seed-flag",
        "--seed",
        "--max-experiments",
        "12",
        *init,
        check=True,
    )
    return repo


def test_baseline_repeats_measure_the_spread_used_by_every_verdict(tmp_path: Path):
    repo = noisy_repo(tmp_path, "--baseline-repeats", "3")
    cli(repo, "baseline", check=True)
    cli(repo, "try", "small", "--set", "lr=0.03", check=True)  # 0.58 with the own seed, 0.48 with the next
    cli(repo, "try", "large", "--set", "lr=0.3", check=True)
    rows = ledger_rows(repo)
    assert [r["branch"].rsplit("/", 1)[1] for r in rows[:3]] == ["baseline"] * 3
    assert [r["status"] for r in rows] == ["keep", "keep", "keep", "discard", "discard", "keep", "keep"]
    assert "--seed 1001" in rows[1]["command"] and "--seed" not in rows[0]["command"]
    assert "spread 0.05" in rows[2]["description"]
    # one run ahead of the candidate bar earns a second run; the two are judged against the keep bar
    assert "(second run of [4], seed 1001)" in rows[4]["description"] and "--seed 1001" in rows[4]["command"]
    pooled = Spread(math.sqrt((0.05**2 * 2 + (0.58 - 0.48) ** 2 / 2) / 3), 5, 3)
    bar = keep_bar(pooled, 2, 3, Z_DEFAULT)
    assert (
        f"mean of 2 runs +0.03 vs baseline 0.5 (mean of 3) (spread {pooled.sd:.4g} over 5 runs, threshold {bar:.4g}"
        in rows[3]["description"]
    )
    assert rows[3]["description"].endswith("spreads at 4% false keeps)")


def test_a_lucky_single_run_is_not_kept_when_its_sequential_does_not_hold(tmp_path: Path):
    repo = noisy_repo(tmp_path, "--baseline-repeats", "5")
    cli(repo, "baseline", check=True)
    cli(repo, "try", "lucky", "--set", "lr=0.02", check=True)  # +0.17 with the own seed, then +0.07
    cli(repo, "try", "real", "--set", "lr=0.3", check=True)
    lucky = [r for r in ledger_rows(repo) if r["branch"].rsplit("/", 1)[1] in ("lucky", "real")]
    assert [r["status"] for r in lucky] == ["discard"] * 3 + [
        "keep"
    ] * 2  # +0.17 with the own seed, then +0.07 and +0.02
    assert "(third run of [6], seed 1002)" in lucky[2]["description"]


def test_repeats_are_judged_on_their_mean(tmp_path: Path):
    repo = noisy_repo(tmp_path, "--baseline-repeats", "4")
    cli(repo, "baseline", check=True)
    cli(repo, "try", "lr", "--set", "lr=0.1", "--repeats", "4", check=True)
    rows = ledger_rows(repo)[4:]
    assert len(rows) == 4 and len({r["commit"] for r in rows}) == 1 and len({r["status"] for r in rows}) == 1
    assert rows[0]["status"] == "keep" and "+0.1 vs baseline, paired over 4 seeds" in rows[0]["description"]
    assert "(repeat 2/4, seed 1001)" in rows[1]["description"]
    status = json.loads(cli(repo, "status", "--json", check=True).stdout)
    assert status["best_keep"]["metric_value"] == pytest.approx(0.605)  # the mean of its four runs


def test_repeats_need_a_way_to_vary_the_seed(tmp_path: Path):
    repo = make_repo(tmp_path / "r", {"t.py": NOISY, "p.json": '{"lr": 0.0}\n'})
    proc = cli(repo, "init", "--command", f"{PY} t.py", "--metric", "score", "--maximize", "--baseline-repeats", "3")
    assert proc.returncode == 2 and "--seed-flag" in proc.stderr


def test_a_keep_that_does_not_hold_up_on_confirmation_is_relabelled(tmp_path: Path):
    repo = noisy_repo(tmp_path, "--baseline-repeats", "5", "--confirm", "--no-sequential")
    cli(repo, "baseline", check=True)
    cli(repo, "try", "lucky", "--set", "lr=0.02", check=True)  # a fluke with the recipe's own seed, then not
    cli(repo, "try", "real", "--set", "lr=0.3", check=True)
    rows = ledger_rows(repo)
    lucky = [r for r in rows if r["branch"].endswith("/lucky")]
    assert [r["status"] for r in lucky] == ["keep", "discard"]
    assert "confirmation of [6]" in lucky[1]["description"] and lucky[0]["commit"] == lucky[1]["commit"]
    real = [r for r in rows if r["branch"].endswith("/real")]
    assert [r["status"] for r in real] == ["keep", "keep"]
    best = json.loads(cli(repo, "status", "--json", check=True).stdout)["best_keep"]
    assert best["branch"].endswith("/real")


def _engine(repo: Path) -> Engine:
    return Engine(campaigns.load(repo), say=lambda _: None)


def test_symptoms_go_to_the_notes_and_steer_the_catalog(tmp_path: Path):
    dest = tmp_path / "demo"
    cli(tmp_path, "demo", "--dir", str(dest), "--experiments", "1", check=True)
    engine = _engine(dest)
    engine.extend_rules(3)
    row = engine.try_(Hypothesis("lr-huge", "diverging learning rate", sets={"policy.optimizer.kwargs.lr": "1.0"}))
    assert row.status == "crash" and "NaN loss" in row.description
    history = engine.history()
    assert history.diagnoses[-1].areas[0] == "batch/sequence/precision"
    assert f"symptoms of [{row.index}] lr-huge: NaN or exploding loss" in (engine.campaign.dir / "notes.md").read_text()
    knobs = CatalogProposer(engine.recipe, engine.workspace.git, engine.campaign.base_commit).knobs(history)
    assert knobs[0].area == "batch/sequence/precision"


BROKEN_PATCH = """\
--- a/t.py
+++ b/t.py
@@ -1,2 +1,2 @@
-import json, sys
+import json, sys)
 seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 0
"""


def _fixer(works: bool):
    calls = []

    def fix(worktree: Path, tail: str) -> bool:
        calls.append(tail)
        if works and "SyntaxError" in tail:
            path = worktree / "t.py"
            path.write_text(path.read_text().replace("import json, sys)", "import json, sys"))
            return True
        (worktree / "t.py").write_text((worktree / "t.py").read_text() + "# tried\n")
        return True

    return fix, calls


@pytest.mark.parametrize("works", [True, False])
def test_a_trivial_crash_is_fixed_and_rerun_or_stays_a_crash(tmp_path: Path, works: bool):
    repo = noisy_repo(tmp_path)
    cli(repo, "baseline", check=True)
    patch = tmp_path / "broken.diff"
    patch.write_text(BROKEN_PATCH)
    fix, calls = _fixer(works)
    engine = _engine(repo)
    engine.try_(Hypothesis("typo", "a change with a syntax error", sets={"lr": "0.2"}, patch=str(patch), fix=fix))
    rows = [r for r in ledger_rows(repo) if r["branch"].endswith("/typo")]
    if works:
        assert rows[0]["status"] == "crash" and rows[1]["status"] != "crash"
        assert (
            f"rerun of [{rows[0]['index']}] after fix 1" in rows[1]["description"]
            and rows[1]["commit"] != rows[0]["commit"]
        )
        assert (
            git(repo, "log", "-1", "--format=%s", rows[1]["commit"]).strip()
            == f"typo: fix after crash [{rows[0]['index']}]"
        )
    else:
        assert [r["status"] for r in rows] == ["crash", "crash", "crash"]  # the first try and two fixes
    assert len(calls) == len(rows) - 1 and "SyntaxError" in calls[0]


def test_a_failure_before_running_is_a_crash_row_on_its_own_empty_commit(tmp_path: Path):
    repo = noisy_repo(tmp_path)
    cli(repo, "baseline", check=True)
    row = _engine(repo).try_(
        replace(Hypothesis("agent-1", "an agent that timed out"), failure="agent timed out after 10m")
    )
    assert row.status == "crash" and "agent timed out after 10m" in row.description
    assert git(repo, "diff", "--name-only", row.parent_commit, row.commit).strip() == ""
    assert not (repo / row.log_path).exists()
