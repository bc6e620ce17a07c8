"""A trial goes to the journal and back whole; the journal's replay cursor reads only what was appended."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.core.journal import Journal
from nrl_autoresearch.core.judge import Reference
from nrl_autoresearch.core.trial import Trial

TRIAL = Trial(
    index=7,
    name="lr-up",
    run="lr-up",
    branch="ar/x/lr-up",
    parent="best",
    parent_commit="a" * 40,
    hypothesis=Hypothesis("lr-up", "larger steps", parent="best", sets={"lr": "0.2"}, repeats=2, seed=3),
    reference=Reference("best keep wd", (0.5, 0.52), ("own", "1001")),
    effective={"wd": "0.1", "lr": "0.2"},
    seed=3,
    group=(7, 8),
    role="repeat 1/2",
)


def test_a_trial_read_back_from_its_journal_intent_is_the_trial_planned(tmp_path: Path):
    journal = Journal(tmp_path / "journal.jsonl")
    journal.record("intent", TRIAL.index, **TRIAL.to_record())
    journal.record("committed", TRIAL.index, commit="b" * 40)  # later steps do not change what was planned
    assert journal.attempts()[7].trial == TRIAL


def test_a_further_run_is_its_own_group_without_repeats_or_fixer(tmp_path: Path):
    again = TRIAL.again(index=9, run_number=3, seed=1002, role="confirmation of [7]", commit="c" * 40, rerun_of=None)
    assert (again.run, again.group, again.hypothesis.repeats, again.commit) == ("lr-up-r3", (9,), 1, "c" * 40)
    journal = Journal(tmp_path / "journal.jsonl")
    journal.record("intent", again.index, **again.to_record())
    assert journal.attempts()[9].trial == replace(again, commit=None)  # the commit to run is the journal's own step


def test_the_cursor_sees_what_another_writer_appends_and_parses_old_lines_once(tmp_path: Path):
    path = tmp_path / "journal.jsonl"
    reader, writer = Journal(path), Journal(path)
    writer.record("intent", 1, name="a")
    assert [e["index"] for e in reader.events()] == [1]
    first = path.read_bytes()
    with path.open("r+b") as fh:  # the bytes already read are garbled in place: a cursor never reads them again
        fh.write(b"#" * (len(first) - 1))
    writer.record("row", 1, status="keep")
    assert [(e["index"], e["step"]) for e in reader.events()] == [(1, "intent"), (1, "row")]
    assert reader.attempts()[1].step == "row" and reader.attempts()[1].data["name"] == "a"
    assert Journal(path).events() == [reader.events()[1]]  # a fresh reader sees the file as it is now


def test_a_line_still_being_written_waits_and_a_replaced_file_is_read_anew(tmp_path: Path):
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.record("intent", 1, name="a")
    with path.open("a") as fh:
        fh.write('{"index": 2, "step": "intent", "name": "b"')  # no newline yet
    assert journal.last_index() == 1
    with path.open("a") as fh:
        fh.write("}\n")
    assert journal.last_index() == 2
    replacement = tmp_path / "other.jsonl"
    Journal(replacement).record("intent", 5, name="e")
    os.replace(replacement, path)
    assert list(journal.attempts()) == [5]
