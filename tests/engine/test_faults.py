"""Faults and concurrency: a full disk, two commands at once, a failing worker, escaped processes, leftover
worktrees, commits the person's git configuration refuses. Nothing is lost, nothing wedges, nothing leaks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from nrl_autoresearch.core import campaign as campaigns
from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.runner.engine import Engine
from tests.helpers import PY, cli, git, ledger_rows, make_repo, score_repo, small_disk

INIT = [
    "init",
    "--command",
    f"{PY} train.py",
    "--metric",
    "val_score",
    "--maximize",
    "--params-file",
    "params.json",
    "--campaign",
    "f",
    "--grace",
    "1s",
]
JOURNAL = "reports/auto_research/f/journal.jsonl"


def steps(repo: Path) -> list[tuple[int | None, str]]:
    path = repo / JOURNAL
    lines = path.read_text().splitlines() if path.exists() else []
    return [(e.get("index"), e["step"]) for e in map(json.loads, lines)]


def wait_for(predicate, timeout: float = 60):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def one_clear_failure(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout and fragment in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# -- 1. a full disk ----------------------------------------------------------------------------------------
TRAIN_FILL = """\
import json, os
cfg = json.load(open("params.json"))
print(f"val_score: {1.0 - abs(cfg['lr'] - 0.1):.4f}", flush=True)
if cfg.get("fill"):
    fd = os.open(os.environ["FILL_AT"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while os.write(fd, b"0" * 65536):
            pass
    except OSError:
        pass
"""


LONG = "a description longer than the room left in any page of the disk " * 100  # its row cannot fit


@pytest.mark.parametrize("command", ["try", "run"])
def test_a_full_disk_during_a_run_ends_in_one_message_and_resume_records_it(tmp_path: Path, command: str):
    repo = make_repo(tmp_path / "r", {"train.py": TRAIN_FILL, "params.json": '{"lr": 0.01, "fill": 0}\n'})
    cli(repo, *INIT, check=True)
    cli(repo, "baseline", check=True)  # preflight wants 1 GiB free: the small disk comes after it
    queue = tmp_path / "queue.json"
    queue.write_text(
        json.dumps([{"name": "fill", "set": {"fill": 1}, "description": LONG}, {"name": "after", "set": {"lr": 0.2}}])
    )
    shutil.move(repo / "reports", tmp_path / "reports")  # the ledger, journal and run logs onto a small disk
    with small_disk(repo / "reports", "16m") as disk:
        shutil.copytree(tmp_path / "reports", disk, dirs_exist_ok=True, symlinks=True)
        filler = disk / "filler.bin"
        args = (
            ["try", "fill", "--set", "fill=1", "--desc", LONG]
            if command == "try"
            else ["run", "--proposer", f"queue:{queue}", "--yes"]
        )
        one_clear_failure(cli(repo, *args, env={"FILL_AT": str(filler)}, timeout=120), "no space left on the disk")
        filler.unlink()
        then = ["try", "after", "--set", "lr=0.2"] if command == "try" else ["resume", "--yes"]
        cli(repo, *then, check=True, timeout=120)
        rows = ledger_rows(repo)
        assert [r["index"] for r in rows] == [1, 2, 3] and rows[2]["status"] == "discard"
        assert rows[1]["description"].startswith(LONG.strip()[:60])
        assert cli(repo, "ledger", "check").returncode == 0
        assert not any((disk / "auto_research/f/worktrees").iterdir())


def test_a_full_disk_when_the_note_is_written_ends_in_one_message_and_resume_adds_it(tmp_path: Path):
    repo = make_repo(tmp_path / "r", {"train.py": TRAIN_FILL, "params.json": '{"lr": 0.01, "fill": 0}\n'})
    cli(repo, *INIT, check=True)
    cli(repo, "baseline", check=True)
    objects = repo / ".git" / "objects"
    shutil.move(objects, tmp_path / "objects")  # git's objects, where a note is written, onto a small disk
    with small_disk(objects, "16m") as disk:
        shutil.copytree(tmp_path / "objects", disk, dirs_exist_ok=True, symlinks=True)
        proc = cli(repo, "try", "fill", "--set", "fill=1", env={"FILL_AT": str(disk / "filler.bin")}, timeout=120)
        one_clear_failure(proc, "no space left on the disk")
        rows = ledger_rows(repo)  # the row is written; its note is not
        assert [r["index"] for r in rows] == [1, 2]
        no_note = subprocess.run(
            ["git", "-C", str(repo), "notes", "--ref", "autoresearch", "list", rows[1]["commit"]], capture_output=True
        )
        assert no_note.returncode == 1 and not no_note.stdout
        (disk / "filler.bin").unlink()
        cli(repo, "try", "after", "--set", "lr=0.2", check=True, timeout=120)
        assert [r["index"] for r in ledger_rows(repo)] == [1, 2, 3]
        assert cli(repo, "ledger", "check").returncode == 0


def _two_rows(tmp_path: Path) -> Path:
    """A campaign with its baseline and one experiment recorded."""
    repo = score_repo(tmp_path / "r")
    cli(repo, *INIT, check=True)
    cli(repo, "baseline", check=True)
    cli(repo, "try", "lr", "--set", "lr=0.2", check=True)
    return repo


def test_a_torn_last_row_is_reported_by_check_and_repaired_by_the_next_writer(tmp_path: Path):
    repo = _two_rows(tmp_path)
    ledger = repo / "reports/auto_research_results.tsv"
    whole = ledger.read_bytes()
    ledger.write_bytes(whole[:-40])  # what a write cut short by a full disk left
    check = cli(repo, "ledger", "check")
    assert check.returncode == 1 and "Traceback" not in check.stderr, check.stderr
    assert "is torn" in check.stdout and "'autoresearch ledger rebuild'" in check.stdout
    assert cli(repo, "status").returncode == 0
    proc = cli(repo, "try", "next", "--set", "lr=0.3", check=True)
    assert (
        "recovered: completed the torn last line of auto_research_results.tsv (row 2) from its git note" in proc.stdout
    )
    assert ledger.read_bytes().startswith(whole) and [r["index"] for r in ledger_rows(repo)] == [1, 2, 3]
    assert cli(repo, "ledger", "check").returncode == 0
    ledger.write_bytes(whole.replace(b"\tkeep\t", b"\tkept\t", 1))  # a row damaged inside the file
    proc = cli(repo, "ledger", "check")
    one_clear_failure(proc, "is not a ledger row")
    assert "run 'autoresearch ledger rebuild'" in proc.stderr
    cli(repo, "ledger", "rebuild", check=True)
    assert cli(repo, "ledger", "check").returncode == 0


# -- 2. one writer per campaign ------------------------------------------------------------------------------
def test_a_second_writer_is_refused_with_who_holds_the_campaign_and_readers_work(tmp_path: Path):
    repo = score_repo(tmp_path / "r")
    cli(repo, *INIT, check=True)
    cli(repo, "baseline", check=True)
    first = subprocess.Popen(
        [PY, "-m", "nrl_autoresearch", "try", "slow", "--set", "sleep=4"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: (2, "launched") in steps(repo))
        second = cli(repo, "try", "other", "--set", "lr=0.2")
        one_clear_failure(second, f"(PID {first.pid}) has been writing to it since ")
        assert "'autoresearch try slow --set sleep=4'" in second.stderr
        assert cli(repo, "status").returncode == 0 and len(ledger_rows(repo)) == 1
        assert cli(repo, "resume", "--report-only").returncode == 0 and cli(repo, "report").returncode == 0
    finally:
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    assert [r["index"] for r in ledger_rows(repo)] == [1, 2] and "other" not in git(repo, "branch", "--list", "*other*")
    assert cli(repo, "ledger", "check").returncode == 0


def test_ledger_check_finds_a_note_on_another_rows_commit(tmp_path: Path):
    repo = _two_rows(tmp_path)
    base, moved = (r["commit"] for r in ledger_rows(repo))
    note = git(repo, "notes", "--ref", "autoresearch", "show", moved)
    git(repo, "notes", "--ref", "autoresearch", "remove", moved)
    subprocess.run(
        ["git", "-C", str(repo), "notes", "--ref", "autoresearch", "append", "-F", "-", base],
        input=note,
        text=True,
        check=True,
        capture_output=True,
    )
    proc = cli(repo, "ledger", "check")
    assert (
        proc.returncode == 1
        and f"row 2: its git note sits on {base[:10]}, not on its commit {moved[:10]}" in proc.stdout
    )


# -- 3. a failure in a worker --------------------------------------------------------------------------------
TRAIN_JSON = """\
import json
cfg = json.load(open("params.json"))
score = "1" + "0" * 400 if cfg["lr"] == 0.5 else repr(1.0 - abs(cfg["lr"] - 0.1))
print('{"val_score": ' + score + '}')
"""


def test_an_exception_reading_the_metric_is_that_runs_crash_row(tmp_path: Path):
    repo = make_repo(tmp_path / "r", {"train.py": TRAIN_JSON, "params.json": '{"lr": 0.01}\n'})
    cli(repo, *INIT, "--metric-source", "jsonl:val_score", check=True)
    cli(repo, "baseline", check=True)
    proc = cli(repo, "try", "huge", "--set", "lr=0.5")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    cli(repo, "try", "next", "--set", "lr=0.2", check=True)
    rows = ledger_rows(repo)
    assert [(r["index"], r["status"]) for r in rows] == [(1, "keep"), (2, "crash"), (3, "discard")]
    assert "Overflow" in rows[1]["description"] or "too large" in rows[1]["description"]
    assert not any((repo / "reports/auto_research/f/worktrees").iterdir())
    assert cli(repo, "ledger", "check").returncode == 0


def test_a_name_the_file_system_refuses_is_a_crash_row_and_nothing_retries_it(tmp_path: Path):
    repo = score_repo(tmp_path / "r")
    cli(repo, *INIT, check=True)
    cli(repo, "baseline", check=True)
    with Engine(campaigns.load(repo), say=lambda _: None) as engine:
        row = engine.try_(Hypothesis("n" * 300, sets={"lr": "0.2"}))
    assert row.index == 2 and row.status == "crash" and "File name too long" in row.description
    for _ in range(2):  # the next commands neither fail nor retry it
        proc = cli(repo, "try", "next", "--set", "lr=0.3") if _ == 0 else cli(repo, "resume", "--report-only")
        assert proc.returncode == 0 and "Traceback" not in proc.stderr and "recovered" not in proc.stdout, proc.stderr
    assert [r["index"] for r in ledger_rows(repo)] == [1, 2, 3]
    assert cli(repo, "ledger", "check").returncode == 0


def test_a_branch_clash_met_by_recovery_is_a_crash_row_not_a_wedge(tmp_path: Path):
    repo = score_repo(tmp_path / "r")
    cli(repo, *INIT, "--prefix", "exp", check=True)
    cli(repo, "baseline", check=True)
    with Engine(campaigns.load(repo), say=lambda _: None) as engine:
        engine.planner.plan(Hypothesis("lr", sets={"lr": "0.2"}))  # what an engine killed right after its intent leaves
    git(repo, "branch", "exp/lr/x")  # refs/heads/exp/lr/x now blocks the branch exp/lr
    for _ in range(2):
        proc = cli(repo, "try", "next", "--set", "lr=0.3") if _ == 0 else cli(repo, "resume", "--report-only")
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    rows = ledger_rows(repo)
    assert [(r["index"], r["status"]) for r in rows] == [(1, "keep"), (2, "crash"), (3, "discard")]
    assert "recovery failed: GitError" in rows[1]["description"] and "exp/lr" in rows[1]["description"]


# -- 4. escaped processes ------------------------------------------------------------------------------------
TRAIN_ESCAPE = """\
import json, os, signal, sys, time
cfg = json.load(open("params.json"))
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open(os.environ["PID_AT"], "w").write(str(os.getpid()))
        time.sleep(600)
    os._exit(0)
time.sleep(cfg.get("sleep", 0))
print(f"val_score: {1.0 - abs(cfg['lr'] - 0.1):.4f}")
"""


def test_an_escaped_grandchild_ends_after_the_engine_was_killed_and_recovery_ran(tmp_path: Path):
    repo = make_repo(tmp_path / "r", {"train.py": TRAIN_ESCAPE, "params.json": '{"lr": 0.01, "sleep": 0}\n'})
    pid_at = tmp_path / "grandchild.pid"
    env = {"PID_AT": str(pid_at)}
    escaped: list[int] = []

    def escapee() -> int:
        wait_for(lambda: pid_at.exists() and pid_at.read_text())
        escaped.append(int(pid_at.read_text()))
        pid_at.unlink()
        return escaped[-1]

    cli(repo, *INIT, check=True)
    try:
        cli(repo, "baseline", check=True, env=env)
        wait_for(lambda: gone(escapee()), 15)  # a normal exit: the run ended, so did its escapee
        engine = subprocess.Popen(
            [PY, "-m", "nrl_autoresearch", "try", "esc", "--set", "sleep=2"],
            cwd=repo,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        pid = escapee()
        engine.send_signal(signal.SIGKILL)
        engine.wait(10)
        cli(repo, "try", "after", "--set", "lr=0.2", check=True, env=env)
        wait_for(lambda: gone(pid), 15)
        assert [r["index"] for r in ledger_rows(repo)] == [1, 2, 3]
    finally:
        if pid_at.exists() and pid_at.read_text():
            escaped.append(int(pid_at.read_text()))
        for pid in escaped:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


# -- 5. leftover worktrees, commits git will refuse ----------------------------------------------------------
def test_resume_releases_a_clean_leftover_worktree_and_keeps_a_dirty_one(tmp_path: Path):
    repo = score_repo(tmp_path / "r")
    cli(repo, *INIT, check=True)
    cli(repo, "baseline", check=True)
    cli(repo, "try", "a", "--set", "lr=0.2", check=True)
    cli(repo, "try", "b", "--set", "lr=0.3", check=True)
    worktrees = repo / "reports/auto_research/f/worktrees"
    branches = [r["branch"] for r in ledger_rows(repo)][1:]
    for branch in branches:  # what a kill between the row and the release leaves
        git(repo, "worktree", "add", "--quiet", str(worktrees / branch.rsplit("/", 1)[1]), branch)
    (worktrees / "b" / "mine.txt").write_text("something the person wrote\n")
    cli(repo, "try", "c", "--set", "lr=0.4", check=True)
    assert not (worktrees / "a").exists() and (worktrees / "b" / "mine.txt").exists()
    assert sorted(p.name for p in worktrees.iterdir()) == ["b"]


def hooks_repo(tmp_path: Path, hook: str, script: str) -> Path:
    repo = score_repo(tmp_path / "r")
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / hook).write_text(script)
    (hooks / hook).chmod(0o755)
    git(repo, "config", "core.hooksPath", str(hooks))
    return repo


def assert_refused_before_anything(repo: Path, proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode == 2 and "git accepts the experiment commits" in proc.stderr, proc.stderr
    assert fragment in proc.stderr, proc.stderr
    assert (
        git(repo, "branch", "--list", "autoresearch/*") == "" and len(git(repo, "worktree", "list").splitlines()) == 1
    )
    assert not (repo / "reports/auto_research/f/worktrees").exists()


def test_preflight_finds_a_commit_msg_hook_that_refuses_commits(tmp_path: Path):
    repo = hooks_repo(tmp_path, "commit-msg", "#!/bin/sh\nexit 1\n")
    cli(repo, *INIT, check=True)
    proc = cli(repo, "baseline")
    assert_refused_before_anything(repo, proc, f"the commit-msg hook in {tmp_path / 'hooks'} refused it")
    assert "exit status 1, no output" in proc.stderr


def test_preflight_finds_a_failing_pre_commit_hook(tmp_path: Path):
    repo = hooks_repo(tmp_path, "pre-commit", "#!/bin/sh\necho 'lint failed' >&2\nexit 1\n")
    cli(repo, *INIT, check=True)
    assert_refused_before_anything(repo, cli(repo, "baseline"), "lint failed")


def test_preflight_finds_signing_without_a_usable_key(tmp_path: Path):
    repo = score_repo(tmp_path / "r")
    git(repo, "config", "commit.gpgsign", "true")
    git(repo, "config", "user.signingkey", "NO-SUCH-KEY")
    (tmp_path / "gnupg").mkdir(mode=0o700)
    cli(repo, *INIT, check=True)
    proc = cli(repo, "baseline", env={"GNUPGHOME": str(tmp_path / "gnupg")})
    assert_refused_before_anything(repo, proc, "git config commit.gpgsign false")


def test_a_commit_refused_after_preflight_is_a_crash_row_with_the_hook_and_no_worktree(tmp_path: Path):
    repo = score_repo(tmp_path / "r")
    cli(repo, *INIT, check=True)
    cli(repo, "baseline", check=True)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "commit-msg").write_text("#!/bin/sh\nexit 1\n")
    (hooks / "commit-msg").chmod(0o755)
    git(repo, "config", "core.hooksPath", str(hooks))  # installed after preflight passed
    proc = cli(repo, "try", "lr", "--set", "lr=0.2")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    row = ledger_rows(repo)[1]
    assert row["status"] == "crash" and "the commit-msg hook in" in row["description"]
    assert not any((repo / "reports/auto_research/f/worktrees").iterdir())


def test_a_commit_refused_by_a_silent_hook_says_which_hook(tmp_path: Path):
    from nrl_autoresearch.core.git import GitError
    from nrl_autoresearch.runner.workspace import Workspace

    repo = hooks_repo(tmp_path, "commit-msg", "#!/bin/sh\nexit 1\n")
    ws = Workspace(repo, "autoresearch/x", tmp_path / "wt")
    worktree = ws.create("e", git(repo, "rev-parse", "HEAD").strip())
    try:
        ws.commit(worktree, [], "e: nothing\n", allow_empty=True)
        raise AssertionError("the hook let the commit through")
    except GitError as err:
        assert "exit status 1, no output" in str(err) and "the commit-msg hook in" in str(err)
    finally:
        assert ws.release(worktree)
