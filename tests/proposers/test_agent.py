"""`agent:"COMMAND"` with real scripts as the agent: a change committed and run, protected files refused, a hang
killed with its whole tree, a syntax error fixed by crash triage."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import psutil

from nrl_autoresearch.core.campaign import load
from tests.helpers import PY, git, ledger_rows, tree_digest
from tests.proposers.support import cli, init, project

# Each agent is a script run in the scratch checkout; `calls` counts its calls in a file next to it.
PROLOGUE = """\
import json, os, pathlib, sys
here = pathlib.Path(__file__).parent
brief = pathlib.Path(os.environ["AUTORESEARCH_BRIEF"]).read_text()
calls = len(list(here.glob("brief-*.md"))) + 1
(here / f"brief-{calls}.md").write_text(brief)
params = json.loads(pathlib.Path("params.json").read_text())
"""
GOOD = """
params["lr"] = 0.1
pathlib.Path("params.json").write_text(json.dumps(params) + "\\n")
pathlib.Path("AUTORESEARCH_RESULT.json").write_text(json.dumps({"name": "lr-to-0.1", "description": "the right rate"}))
"""
FAILING = """
import subprocess, time
if calls == 1:  # edits the evaluation, which the campaign protects
    pathlib.Path("train.py").write_text(pathlib.Path("train.py").read_text().replace("score = ", "score = 10 + "))
    print(json.dumps({"name": "cheat", "description": "a better score"}))
elif calls == 2:  # hangs, with a child
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    (here / "pids").write_text(f"{os.getpid()} {child.pid}")
    time.sleep(600)
"""
TYPO_THEN_FIX = """
train = pathlib.Path("train.py")
if "Your change crashed" in brief:
    assert "SyntaxError" in brief
    train.write_text(train.read_text().replace("def broken(:\\n", ""))
else:
    params["lr"] = 0.1
    pathlib.Path("params.json").write_text(json.dumps(params) + "\\n")
    train.write_text("def broken(:\\n" + train.read_text())
    print(json.dumps({"name": "lr-and-typo", "description": "right rate, with a typo"}))
"""
DROP_KEY_THEN_CHEAT = """
if "Your change crashed" in brief:
    pathlib.Path("train.py").write_text("print('val_score: 9')\\n")
else:
    del params["layers"]
    pathlib.Path("params.json").write_text(json.dumps(params) + "\\n")
    print(json.dumps({"name": "drop-layers", "description": "fewer settings"}))
"""


def agent(tmp_path: Path, body: str) -> str:
    script = tmp_path / "agent.py"
    script.write_text(PROLOGUE + textwrap.dedent(body))
    return f"agent:{PY} {script}"


def names(rows: list[dict]) -> list[str]:
    return [r["branch"].rsplit("/", 1)[1] for r in rows]


def assert_no_scratch_left(repo: Path) -> None:
    assert not list((repo / "reports/auto_research/p/agent").glob("agent-*/"))
    assert len(git(repo, "worktree", "list", "--porcelain").split("worktree ")) == 2  # the main checkout only


def test_agent_change_is_committed_and_run(tmp_path: Path):
    repo = project(tmp_path / "r")
    before = tree_digest(repo)
    init(repo, 2)
    cli(repo, "run", "--proposer", agent(tmp_path, GOOD), "--yes")
    rows = ledger_rows(repo)
    assert names(rows) == ["baseline", "lr-to-0.1"] and rows[1]["status"] == "keep"
    assert rows[1]["description"].startswith("the right rate")
    assert json.loads(git(repo, "show", f"{rows[1]['commit']}:params.json"))["lr"] == 0.1
    assert git(repo, "show", "--name-only", "--format=", rows[1]["commit"]).split() == ["params.json"]
    brief = (tmp_path / "brief-1.md").read_text()
    for section in (
        "## Objective",
        "maximize `val_score`",
        "## Ledger so far",
        "| 1 | baseline | keep | 0.83 |",
        "## Best keep",
        "`lr` = 0.01",
        "## Exploration ideas",
        "## Rules",
        "AUTORESEARCH_RESULT.json",
    ):
        assert section in brief, section
    assert_no_scratch_left(repo)
    after = tree_digest(repo)
    assert {k: v for k, v in after.items() if k != "status"} == {k: v for k, v in before.items() if k != "status"}


def test_agent_failures_are_crash_rows(tmp_path: Path):
    """A protected edit refused, a hang killed with its child at the limit, no change: each a crash row."""
    repo = project(tmp_path / "r")
    init(repo, 4)
    load(repo).with_options(protected=["train.py"]).save()  # the campaign's evaluation file
    cli(repo, "run", "--proposer", agent(tmp_path, FAILING), "--yes", env={"AUTORESEARCH_AGENT_TIMEOUT_S": "3"})
    rows = ledger_rows(repo)
    assert names(rows) == ["baseline", "agent-2", "agent-3", "agent-4"]
    assert [r["status"] for r in rows] == ["keep", "crash", "crash", "crash"]
    reasons = [
        "edited protected paths (train.py): refused",
        "timed out after 3s; its process tree was killed",
        "produced no change",
    ]
    for row, reason in zip(rows[1:], reasons, strict=True):
        assert f"crash: agent {reason}" in row["description"], row["description"]
    for branch in git(repo, "branch", "--format=%(refname:short)").split():
        assert git(repo, "show", f"{branch}:train.py") == git(repo, "show", "main:train.py")
    for pid in map(int, (tmp_path / "pids").read_text().split()):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert_no_scratch_left(repo)


def test_crash_triage_reruns_the_agent_with_the_crash(tmp_path: Path):
    repo = project(tmp_path / "r")
    init(repo, 3)
    cli(repo, "run", "--proposer", agent(tmp_path, TYPO_THEN_FIX), "--yes")
    rows = ledger_rows(repo)
    assert names(rows) == ["baseline", "lr-and-typo", "lr-and-typo"]
    assert [r["status"] for r in rows] == ["keep", "crash", "keep"] and "rerun of [2] after fix 1" in rows[2][
        "description"
    ]
    assert "SyntaxError" in (tmp_path / "brief-2.md").read_text()
    assert "def broken" not in git(repo, "show", f"{rows[2]['commit']}:train.py")
    assert git(repo, "show", "--name-only", "--format=", rows[2]["commit"]).split() == ["train.py"]


def test_a_fix_that_edits_a_protected_file_is_refused(tmp_path: Path):
    repo = project(tmp_path / "r")
    init(repo, 3)
    load(repo).with_options(protected=["train.py"]).save()
    proc = cli(repo, "run", "--proposer", agent(tmp_path, DROP_KEY_THEN_CHEAT), "--yes")
    rows = ledger_rows(repo)
    assert names(rows) == ["baseline", "drop-layers", "drop-layers-2"]
    assert [r["status"] for r in rows] == ["keep", "crash", "crash"]
    assert "agent fix of drop-layers not kept: edited protected paths (train.py): refused" in proc.stdout
    for branch in git(repo, "branch", "--format=%(refname:short)").split():
        assert git(repo, "show", f"{branch}:train.py") == git(repo, "show", "main:train.py")
