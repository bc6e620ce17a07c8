"""Session memory: the files another person or agent resumes from, written from a real campaign's ledger, one
session per working stretch, files remembered across processes, secrets never written."""

from __future__ import annotations

import os
import time
from pathlib import Path

from nrl_autoresearch.core import campaign as campaigns
from nrl_autoresearch.core import session
from nrl_autoresearch.core.ledger import Ledger
from nrl_autoresearch.core.session import Moment, Session
from nrl_autoresearch.core.stoprules import StopStatus
from tests.helpers import PY, cli, score_repo

GOING = StopStatus(False, None, "stop condition not yet met: 1/3 attempted")
MET = StopStatus(True, "max_experiments", "stop condition met: 3/3 attempted")


def campaign(tmp_path: Path):
    repo = score_repo(tmp_path / "r")
    cli(
        repo,
        "init",
        "--command",
        f"{PY} train.py",
        "--metric",
        "val_score",
        "--maximize",
        "--params-file",
        "params.json",
        "--max-experiments",
        "3",
        check=True,
    )
    cli(repo, "baseline", check=True)
    c = campaigns.load(repo)
    return c, Ledger(c.ledger_path).rows(c.prefix)


def test_a_checkpoint_writes_state_handoff_timeline_from_the_ledger(tmp_path: Path):
    c, rows = campaign(tmp_path)
    memory = Session(c)
    memory.checkpoint("launch", "started lr-up", Moment(rows, GOING, ["lr-up"], ["prefer small changes"], "main"))
    state = (memory.dir / "session_state.md").read_text()
    handoff = (memory.dir / "handoff.md").read_text()
    assert memory.dir.parent == c.repo / "session" and "- Branch: main" in state
    assert f"best keep: {rows[0].branch} ({rows[0].metric_value:.6g})" in state and "in flight: lr-up" in state
    assert "steering (additive): prefer small changes" in state and "launch: started lr-up" in state
    assert f"Branch prefix: `{c.prefix}/`. Last ledger index: 1" in handoff and "let lr-up finish" in handoff
    memory.checkpoint("verdict", "all done", Moment(rows, MET, [], [], "main"))
    assert "ask before continuing" in (memory.dir / "handoff.md").read_text()
    assert "- stop condition met: 3/3 attempted" in (memory.dir / "session_state.md").read_text()
    timeline = (memory.dir / "timeline.md").read_text()
    assert timeline.startswith("# Timeline\n") and timeline.index("launch") < timeline.index("verdict")
    # a checkpoint the next one follows within moments: the timeline has it, state and handoff wait for the next
    files = {name: (memory.dir / name).read_bytes() for name in ("session_state.md", "handoff.md")}
    memory.checkpoint("before edit", "[2] wd-up from baseline", Moment(rows, GOING, [], [], "main"), passing=True)
    assert "— before edit\n- [2] wd-up from baseline" in (memory.dir / "timeline.md").read_text()
    assert {name: (memory.dir / name).read_bytes() for name in files} == files
    (memory.dir / "handoff.md").write_text("edited by hand\n")  # not what this session wrote: written again
    memory.checkpoint("verdict", "all done", Moment(rows, MET, [], [], "main"))
    assert "ask before continuing" in (memory.dir / "handoff.md").read_text()


def test_a_later_process_continues_the_session_and_its_file_list_a_stale_one_starts_anew(tmp_path: Path):
    c, rows = campaign(tmp_path)
    first = Session(c)
    first.checkpoint("plan", "baseline first", Moment(rows, GOING, [], [], "main"))
    first.file("Changed", "params.json", "lr 0.2")
    second = Session(c)
    second.file("Generated", "reports/plot.png", "progress plot")
    files = (second.dir / "files.md").read_text()
    assert second.dir == first.dir and second.started == first.started
    assert "- `params.json` - lr 0.2" in files and "- `reports/plot.png` - progress plot" in files
    time.sleep(1.1)  # a session folder is named by the second it starts
    fresh = Session(c, new=True)
    assert fresh.dir != first.dir and session.latest(c.repo) == fresh.dir
    stale = time.time() - session.REUSE_WITHIN_S - 60
    for path in [*fresh.dir.iterdir(), fresh.dir]:
        os.utime(path, (stale, stale))
    time.sleep(1.1)
    assert Session(c).dir not in (first.dir, fresh.dir)


def test_a_secret_in_the_steering_never_reaches_the_session_files(tmp_path: Path, monkeypatch):
    c, rows = campaign(tmp_path)
    monkeypatch.setenv("HUB_API_TOKEN", "s3cr3t-value-123")
    memory = Session(c)
    memory.checkpoint(
        "steer", "told to use s3cr3t-value-123", Moment(rows, GOING, [], ["token s3cr3t-value-123"], "main")
    )
    for path in memory.dir.iterdir():
        assert "s3cr3t-value-123" not in path.read_text(), path.name
