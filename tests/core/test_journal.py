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
