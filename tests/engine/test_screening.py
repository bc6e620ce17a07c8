"""--screen: each new hypothesis first runs a share of its steps, with real toy-GRPO processes on the local launcher."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from nrl_autoresearch.demo import RECIPE, create_repo
from tests.helpers import cli, ledger_rows


def screened_campaign(tmp_path: Path, *extra: str) -> Path:
    repo = create_repo(tmp_path / "rl")
    cli(
        repo,
        "init",
        "--recipe",
        RECIPE,
        "--runner",
        sys.executable,
        "--baseline-repeats",
        "2",
        "--no-sequential",
        "--max-experiments",
        "8",
        "--screen",
        "0.25",
        *extra,
        check=True,
    )
    cli(repo, "baseline", check=True)
    return repo


def test_a_screen_far_behind_is_not_promoted_and_one_within_noise_runs_in_full(tmp_path):
    repo = screened_campaign(tmp_path)
    cli(repo, "try", "lr-tiny", "--set", "policy.optimizer.kwargs.lr=1.0e-5", check=True)
    cli(repo, "try", "lr-up", "--set", "policy.optimizer.kwargs.lr=6.0e-3", check=True)
    rows = ledger_rows(repo)
    tiny, up_screen, up_full = rows[2:]
    assert tiny["status"] == "discard" and "(screen 10/40 steps); screened at step 10/40:" in tiny["description"]
    assert "not promoted" in tiny["description"] and len(rows) == 5  # no full run of lr-tiny
    assert up_screen["status"] == "discard" and "promoted to a full run" in up_screen["description"]
    assert up_full["branch"] == up_screen["branch"] and up_full["commit"] == up_screen["commit"]
    assert up_full["status"] == "keep" and "screen" not in up_full["description"]
    full_log = (repo / up_full["log_path"]).read_text()
    assert "Step 40/40" in full_log and "Step 11/" not in (repo / up_screen["log_path"]).read_text()
    status = cli(repo, "status", check=True).stdout
    assert "run(s) pruned" not in status  # a screen is no prune


def test_a_screen_never_serves_as_reference_or_spread(tmp_path):
    repo = screened_campaign(tmp_path)
    cli(repo, "try", "lr-up", "--set", "policy.optimizer.kwargs.lr=6.0e-3", check=True)
    screen, full = ledger_rows(repo)[2:]
    match = re.search(
        r"screened at step 10/40: val:accuracy ([0-9.]+) vs the best's ([0-9.]+) ±", screen["description"]
    )
    assert match and float(match.group(2)) < 0.5  # the baseline at step 10, not at step 40
    gain = re.search(r"; \+([0-9.]+) vs baseline ([0-9.]+) \(mean of 2\)", full["description"])
    assert gain and abs(float(full["metric_value"]) - float(gain.group(2)) - float(gain.group(1))) < 1e-3  # alone


def test_screen_needs_a_share_between_0_and_1_and_a_recipe_that_sets_its_steps(tmp_path):
    repo = create_repo(tmp_path / "rl")
    bad = cli(repo, "init", "--recipe", RECIPE, "--runner", sys.executable, "--screen", "1.5")
    assert bad.returncode == 2 and "bad --screen 1.5" in bad.stderr
    (tmp_path / "cmd").mkdir()
    other = create_repo(tmp_path / "cmd" / "repo")
    refused = cli(
        other, "init", "--command", f"{sys.executable} -c pass", "--metric", "score", "--maximize", "--screen", "0.25"
    )
    assert refused.returncode == 2 and "--screen needs a recipe whose step count can be set" in refused.stderr
    assert not (repo / "reports").exists() and not (other / "reports").exists()
