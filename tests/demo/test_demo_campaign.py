"""`autoresearch demo`: a whole campaign on the embedded NeMo-RL-shaped project."""

from __future__ import annotations

import re
import sys
from itertools import pairwise
from pathlib import Path

from tests.helpers import cli, git, ledger_rows


def test_demo_runs_a_campaign_with_real_metrics_and_honest_verdicts(tmp_path: Path):
    dest = tmp_path / "demo"
    proc = cli(tmp_path, "demo", "--dir", str(dest), check=True)
    out = proc.stdout
    assert out.startswith(f"demo repository: {dest}")
    rows = ledger_rows(dest)
    # the default rule: the baseline's six runs (they measure the spread), then three attempts
    assert [r["index"] for r in rows] == list(range(1, 10))
    assert [r["branch"].endswith("/baseline") for r in rows] == [True] * 6 + [False] * 3
    prefix = rows[0]["branch"].rsplit("/", 1)[0]
    assert prefix.startswith("autoresearch/") and all(r["branch"].startswith(prefix + "/") for r in rows)
    assert all(r["metric_name"] == "val:accuracy" and r["status"] != "crash" for r in rows)
    assert len({round(r["metric_value"], 6) for r in rows}) > 1
    notes = git(dest, "notes", "--ref", "autoresearch", "show", rows[1]["commit"])
    assert '"metric_source": "tensorboard tag validation/accuracy' in notes
    assert "a single run ahead by" in out and "spreads gets a second run" in out  # the plan states the real bars
    # no within-noise change is presented as a finding: every verdict names its measured spread and bar
    for r in rows[6:]:
        assert "over " in r["description"] and "runs, threshold" in r["description"], r["description"]
        assert "false keeps" in r["description"]
    assert "not a finding" not in out and "keep*" not in out
    assert out.count("stop condition not yet met") >= 3 and "stop condition met: 9/9 attempted" in out
    lines = out.splitlines()
    assert not any(a == b and a.startswith("stop condition") for a, b in pairwise(lines))  # never twice in a row
    assert "summary of" in out and "best keep:" in out
    assert (sorted((dest / "session").iterdir())[-1] / "handoff.md").exists()
    assert git(dest, "status", "--porcelain").strip() == ""  # reports and session notes stay untracked


def test_the_default_demo_folder_is_ignored_by_the_project_and_timed_alike_in_help_and_readme():
    root = Path(__file__).resolve().parents[2]
    from nrl_autoresearch.demo import default_dir

    folder = default_dir(root)
    assert folder.parent == root and folder.name.startswith("autoresearch-demo-")
    assert git(root, "check-ignore", "--no-index", f"{folder.name}/run.log").strip() == f"{folder.name}/run.log"
    help_text = " ".join(cli(root, "demo", "--help", check=True).stdout.split())
    readme = " ".join((root / "README.md").read_text().split())
    timing = re.search(r"about \d+ s on a 2-core machine", help_text)
    assert timing and timing.group(0) in readme
    assert "autoresearch-demo-<date>-<time>" in help_text and "autoresearch-demo-<date>-<time>" in readme


def test_demo_refuses_a_non_empty_folder(tmp_path: Path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    proc = cli(tmp_path, "demo", "--dir", str(tmp_path / "taken"))
    assert proc.returncode == 2 and "not empty" in proc.stderr


def test_smoke_run_checks_the_plumbing_and_records_nothing(tmp_path: Path):
    dest = tmp_path / "demo"
    cli(tmp_path, "demo", "--dir", str(dest), "--experiments", "1", check=True)
    before = (dest / "reports/auto_research_results.tsv").read_text()
    branches = git(dest, "branch", "--list")
    import json

    found = json.loads(cli(dest, "smoke", "--set", "grpo.num_prompts_per_step=16", "--json", check=True).stdout)
    assert found["succeeded"] and found["steps"] == 2 and found["metric"]["value"] is not None
    assert found["launcher"] == "local" and found["proved"][0] == "the command starts through the local launcher"
    assert "the objective val:accuracy is read from its outputs" in found["proved"]
    assert "++grpo.max_num_steps=2" in found["command"] and found["metric"]["source"].startswith("tensorboard")
    assert (dest / "reports/auto_research_results.tsv").read_text() == before
    assert git(dest, "branch", "--list") == branches and len(git(dest, "worktree", "list").splitlines()) == 1
    bad = cli(dest, "smoke", "--set", "grpo.num_prompts_per_stepp=16")
    assert bad.returncode == 2 and "grpo.num_prompts_per_step" in bad.stderr


def test_queue_run_on_the_nemo_rl_shaped_repository_records_exactly_the_count(tmp_path: Path):
    import json

    from nrl_autoresearch.demo import RECIPE, create_repo

    repo = create_repo(tmp_path / "rl")
    queue = tmp_path / "hypotheses.json"
    queue.write_text(
        json.dumps(
            [
                {
                    "name": "lr-huge",
                    "description": "a learning rate that diverges",
                    "set": {"policy.optimizer.kwargs.lr": 1.0},
                },
                {
                    "name": "more-generations",
                    "description": "bigger groups",
                    "set": {"grpo.num_generations_per_prompt": 16},
                },
                {"name": "never", "description": "over the count", "set": {"policy.generation.temperature": 0.8}},
            ]
        )
    )
    cli(repo, "init", "--recipe", RECIPE, "--runner", sys.executable, "--max-experiments", "3", check=True)
    out = cli(repo, "run", "--proposer", f"queue:{queue}", "--yes", check=True).stdout
    rows = ledger_rows(repo)
    assert [(r["index"], r["status"]) for r in rows] == [(1, "keep"), (2, "crash"), (3, "keep")]
    assert "NaN loss" in rows[1]["description"]
    assert "stop condition met: 3/3 attempted" in out
