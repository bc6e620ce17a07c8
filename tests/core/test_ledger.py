"""The ledger's exact format, its lock, and its git-notes mirror."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from nrl_autoresearch.core.errors import disk_full
from nrl_autoresearch.core.git import Git
from nrl_autoresearch.core.ledger import COLUMNS, HEADER, Ledger, LedgerDamaged, Notes, Row, best, rebuild
from nrl_autoresearch.core.redact import redact
from tests.helpers import fill, git, make_repo, small_disk


def row(index: int, status: str = "keep", value: float | None = 0.5, desc: str = "idea", commit: str = "") -> Row:
    return Row(
        index,
        f"autoresearch/x/e{index}",
        "a" * 40,
        commit or f"{index:040d}",
        "recipe.yaml",
        "val:accuracy",
        value,
        12.34,
        58.66,
        "local",
        "",
        "uv run train.py --lr 1",
        "reports/auto_research/x/e/run.log",
        status,
        desc,
    )


def test_columns_are_the_template_and_crash_rows_use_zeros(tmp_path: Path):
    assert COLUMNS == (
        "index",
        "branch",
        "parent_commit",
        "commit",
        "recipe",
        "metric_name",
        "metric_value",
        "memory_gb",
        "elapsed_min",
        "launcher",
        "job_id",
        "command",
        "log_path",
        "status",
        "description",
    )
    ok = row(1, value=0.7421).to_line().rstrip("\n").split("\t")
    assert ok[6:9] == ["0.742100", "12.3", "58.7"] and ok[10] == "none"
    crash = row(2, "crash", None, "tab\there\nnewline").to_line().rstrip("\n").split("\t")
    assert crash[6:8] == ["0.000000", "0.0"] and crash[14] == "tab here newline"
    assert Row.from_line(row(1, value=0.7421).to_line()).metric_value == 0.7421
    read = Row.from_line(row(2, "crash", None).to_line())
    assert read.metric_value is None and read.memory_gb is None


def test_small_memory_keeps_useful_digits():
    from dataclasses import replace

    assert replace(row(1), memory_gb=13 / 1024).to_line().split("\t")[7] == "0.013"
    assert replace(row(1), memory_gb=0.5).to_line().split("\t")[7] == "0.5"


def test_appends_are_whole_lines_under_concurrency(tmp_path: Path):
    ledger = Ledger(tmp_path / "reports" / "results.tsv")
    ledger.ensure()
    threads = [threading.Thread(target=ledger.append, args=(row(i, desc="x" * 3000),)) for i in range(1, 41)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = ledger.path.read_text().splitlines()
    assert lines[0] + "\n" == HEADER and len(lines) == 41
    assert sorted(int(line.split("\t")[0]) for line in lines[1:]) == list(range(1, 41))


def test_best_honours_a_minimised_metric():
    rows = [row(1, value=0.5), row(2, value=0.2), row(3, "discard", 0.1), row(4, "crash", None)]
    assert best(rows, maximize=True).index == 1
    assert best(rows, maximize=False).index == 2


def test_best_judges_a_configuration_by_the_mean_of_its_runs_and_its_latest_verdict():
    repeats = [row(2, value=0.6, commit="c"), row(3, value=0.8, commit="c")]
    assert best([row(1, value=0.65), *repeats], maximize=True).metric_value == 0.7
    not_confirmed = [row(1, value=0.65), row(2, value=0.9, commit="c"), row(3, "discard", 0.5, commit="c")]
    assert best(not_confirmed, maximize=True).index == 1


def test_rebuild_restores_the_file_byte_for_byte(tmp_path: Path):
    repo = make_repo(tmp_path / "r", {"a.txt": "a\n"})
    commits = []
    for i in range(3):
        (repo / "a.txt").write_text(f"{i}\n")
        git(repo, "commit", "-qam", f"c{i}")
        commits.append(git(repo, "rev-parse", "HEAD").strip())
    ledger, notes = Ledger(repo / "reports" / "results.tsv"), Notes(Git(repo))
    for i, commit in enumerate(commits + [commits[0]], start=1):  # a commit may carry two rows (a repeat)
        r = Row(**{**row(i).__dict__, "commit": commit})
        notes.add(commit, ledger.append(r), campaign="x")
    original = ledger.path.read_bytes()
    ledger.path.unlink()
    assert rebuild(ledger, notes) == 4
    assert ledger.path.read_bytes() == original


def test_redaction_of_environment_secrets_and_token_arguments():
    env = {"WANDB_API_KEY": "abcdef123456", "HOME": "/root", "XDG_SESSION_TYPE": "tty"}
    text = "wandb abcdef123456 --hf-token hf_abcdefghijklmnopqrstuv policy.tokenizer.name=Qwen max_new_tokens=512 tty"
    assert redact(text, env) == "wandb *** --hf-token *** policy.tokenizer.name=Qwen max_new_tokens=512 tty"


def test_a_row_on_a_full_disk_is_written_whole_or_not_at_all(tmp_path: Path):
    with small_disk(tmp_path / "disk", "1m") as disk:
        ledger = Ledger(disk / "results.tsv")
        ledger.append(row(1))
        before = ledger.path.read_bytes()
        filler = fill(disk)
        with pytest.raises(OSError) as err:
            ledger.append(row(2, desc="x" * 9000))  # more than the page left: the write is cut short
        assert disk_full(err.value)
        assert ledger.path.read_bytes() == before and ledger.torn() == ""
        filler.unlink()
        ledger.append(row(2))
        assert [r.index for r in ledger.rows()] == [1, 2]


def test_a_torn_last_line_is_completed_from_its_note_or_dropped(tmp_path: Path):
    repo = make_repo(tmp_path / "r", {"a.txt": "a\n"})
    head = git(repo, "rev-parse", "HEAD").strip()
    ledger, notes = Ledger(repo / "reports" / "results.tsv"), Notes(Git(repo))
    notes.add(head, ledger.append(row(1, commit=head)), campaign="x")
    whole = ledger.path.read_bytes()
    line2 = row(2, commit=head).to_line()
    notes.add(head, line2, campaign="x")  # the note was written, the TSV line torn
    with ledger.path.open("a") as fh:
        fh.write(line2[:25])
    assert [r.index for r in ledger.rows()] == [1] and ledger.torn() == line2[:25]
    repaired = ledger.repair(notes)
    assert repaired is not None and "from its git note" in repaired
    assert ledger.path.read_bytes() == whole + line2.encode()
    with ledger.path.open("a") as fh:
        fh.write("3\tautoresearch/x/e3\tab")  # no note holds it: the row was never written
    dropped = ledger.repair(notes)
    assert dropped is not None and "dropped" in dropped and ledger.path.read_bytes() == whole + line2.encode()
    assert ledger.repair(notes) is None


def test_a_damaged_line_inside_the_ledger_names_the_fix(tmp_path: Path):
    ledger = Ledger(tmp_path / "results.tsv")
    ledger.append(row(1))
    with ledger.path.open("a") as fh:
        fh.write("2\tbroken\n")
    with pytest.raises(LedgerDamaged, match="line 3 of .* 'autoresearch ledger rebuild'"):
        ledger.rows()


def test_a_row_appended_by_another_process_is_read(tmp_path: Path):
    ledger = Ledger(tmp_path / "results.tsv")
    ledger.append(row(1))
    assert [r.index for r in ledger.rows()] == [1]
    script = (
        "import sys; from pathlib import Path; from nrl_autoresearch.core.ledger import Ledger, Row; "
        "Ledger(Path(sys.argv[1])).append(Row.from_line(sys.argv[2]))"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(ledger.path), row(2, desc="from elsewhere").to_line()],
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert [(r.index, r.description) for r in ledger.rows()] == [(1, "idea"), (2, "from elsewhere")]
    assert [line for _, line in ledger.lines()] == ledger.path.read_text().splitlines(keepends=True)[1:]
    assert [r.index for r in Ledger(ledger.path).rows()] == [1, 2]


def test_a_torn_tail_is_no_row_until_it_is_whole_after_earlier_reads(tmp_path: Path):
    ledger = Ledger(tmp_path / "results.tsv")
    ledger.append(row(1))
    assert len(ledger.rows()) == 1
    line2 = row(2).to_line()
    with ledger.path.open("a") as fh:
        fh.write(line2[:30])
    assert [r.index for r in ledger.rows()] == [1] and ledger.torn() == line2[:30]
    with ledger.path.open("a") as fh:
        fh.write(line2[30:])
    assert [r.index for r in ledger.rows()] == [1, 2]
    with ledger.path.open("a") as fh:
        fh.write(row(3).to_line()[:12])
    assert len(ledger.rows()) == 2
    ledger.append(row(3))  # an append drops a torn tail first (durable.append_whole)
    assert [r.index for r in ledger.rows()] == [1, 2, 3] and ledger.torn() == ""


def test_a_rewritten_ledger_is_read_again(tmp_path: Path):
    ledger = Ledger(tmp_path / "results.tsv")
    for i in (1, 2, 3):
        ledger.append(row(i))
    assert len(ledger.rows()) == 3
    replaced = tmp_path / "new.tsv"
    replaced.write_text(HEADER + row(7).to_line() + row(8).to_line() + row(9).to_line() + row(10).to_line())
    os.replace(replaced, ledger.path)  # as `rebuild` does: a new file, longer, another last line
    assert [r.index for r in ledger.rows()] == [7, 8, 9, 10]
    text = ledger.path.read_text()
    ledger.path.write_text(text.replace("\tidea\n", "\tIDEA\n", 1))  # a row edited in place: same size, same end
    later = ledger.path.stat().st_mtime_ns + 1_000_000_000
    os.utime(ledger.path, ns=(later, later))
    assert [r.description for r in ledger.rows()] == ["IDEA", "idea", "idea", "idea"]
    ledger.path.write_text(HEADER + row(5).to_line())  # cut down in place
    assert [r.index for r in ledger.rows()] == [5]
    with ledger.path.open("w") as fh:  # rewritten in place, longer than before, a different line where one ended
        fh.write(HEADER + row(6, desc="other").to_line() + row(7).to_line())
    assert [(r.index, r.description) for r in ledger.rows()] == [(6, "other"), (7, "idea")]
    ledger.path.unlink()
    assert ledger.rows() == []


def test_a_damaged_appended_line_is_reported_on_every_read_until_rebuilt(tmp_path: Path):
    ledger = Ledger(tmp_path / "results.tsv")
    ledger.append(row(1))
    assert len(ledger.rows()) == 1
    with ledger.path.open("a") as fh:
        fh.write("2\tbroken\n")
    for _ in range(2):
        with pytest.raises(LedgerDamaged, match="line 3 of "):
            ledger.rows()
    ledger.path.write_text(HEADER + row(1).to_line() + row(2).to_line())
    assert [r.index for r in ledger.rows()] == [1, 2]


def test_a_commit_that_carries_several_rows_keeps_one_json_line_each_and_a_replay_adds_none(tmp_path: Path):
    repo = make_repo(tmp_path / "r", {"a.txt": "a\n"})
    commit = git(repo, "rev-parse", "HEAD").strip()
    notes = Notes(Git(repo))
    lines = [row(i).to_line() for i in (1, 2)]
    for line in lines:  # repeated runs of one configuration: each row new to the ledger
        notes.add(commit, line, campaign="x", new=True)
    notes.add(commit, lines[1], campaign="x")  # a replay completing the note step of a row already there
    text = git(repo, "notes", "--ref", "autoresearch", "show", commit)
    assert [json.loads(line)["row"] for line in text.splitlines()] == lines  # git alone reads it as JSON lines
