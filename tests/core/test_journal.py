"""The journal's lines are whole or absent: a full disk or an older writer's torn line never glues onto the next."""

from __future__ import annotations

from pathlib import Path

import pytest

from nrl_autoresearch.core.errors import disk_full
from nrl_autoresearch.core.journal import Journal
from tests.helpers import fill, small_disk


def test_an_event_on_a_full_disk_is_written_whole_or_not_at_all(tmp_path: Path):
    with small_disk(tmp_path / "disk", "1m") as disk:
        journal = Journal(disk / "journal.jsonl")
        journal.record("intent", 1, name="a")
        before = journal.path.read_bytes()
        filler = fill(disk)
        with pytest.raises(OSError) as err:
            journal.record("intent", 2, name="b" * 9000)
        assert disk_full(err.value) and journal.path.read_bytes() == before
        filler.unlink()
        journal.record("row", 1, status="keep")
        assert [(e["index"], e["step"]) for e in journal.events()] == [(1, "intent"), (1, "row")]


def test_a_torn_line_is_dropped_before_the_next_event(tmp_path: Path):
    journal = Journal(tmp_path / "journal.jsonl")
    journal.record("intent", 1, name="a")
    with journal.path.open("a") as fh:
        fh.write('{"index": 2, "step": "int')
    journal.record("row", 1, status="keep")
    assert journal.path.read_text().count("\n") == 2
    assert [(e["index"], e["step"]) for e in journal.events()] == [(1, "intent"), (1, "row")]


def test_events_of_one_step_and_one_attempt_follow_the_replay_and_a_replaced_file(tmp_path: Path):
    journal = Journal(tmp_path / "journal.jsonl")
    journal.record("intent", 1, name="a")
    journal.record("steer", text="smaller learning rates")
    journal.record("branch", 1, worktree="/w/a")
    assert [e["text"] for e in journal.events("steer")] == ["smaller learning rates"]
    assert journal.events("prepared") == [] and journal.attempt(2) is None
    copy = journal.attempt(1)
    assert copy is not None and (copy.step, copy.data) == ("branch", {"name": "a", "worktree": "/w/a"})
    copy.data["name"] = "changed by the caller"
    Journal(journal.path).record("steer", text="try warmup")  # another process appends
    assert [e["text"] for e in journal.events("steer")] == ["smaller learning rates", "try warmup"]
    assert journal.attempt(1).data["name"] == "a"  # type: ignore[union-attr]
    journal.path.write_text('{"step": "steer", "t": 0, "text": "only this"}\n')  # replaced: replayed anew
    assert [e["text"] for e in journal.events("steer")] == ["only this"] and journal.attempt(1) is None
