"""Metric sources read what real writers wrote: TensorBoard files from tensorboardX, logs, JSON lines."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pytest
from tensorboardX import SummaryWriter

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.metric import Census, Point, RunOutputs, aggregate, validate_aggregate
from nrl_autoresearch.metrics import parse_source
from nrl_autoresearch.metrics.tfevents import read_scalars
from tests.helpers import values_read


def outputs(tmp_path: Path, log: str = "") -> RunOutputs:
    """A run starting now: the census holds what its folders already have."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    (run_dir / "run.log").write_text(log)
    return RunOutputs(run_dir / "run.log", run_dir, tmp_path / "work", Census.take(run_dir, tmp_path / "work"))


def write_tb(folder: Path, tag: str, values: list[float], start_step: int = 1) -> None:
    writer = SummaryWriter(str(folder))
    for i, value in enumerate(values):
        writer.add_scalar(tag, value, start_step + i)
    writer.close()


def test_reader_returns_every_point_like_tensorboard_itself(tmp_path: Path):
    from tensorboard.backend.event_processing import event_accumulator

    values = [math.sin(i / 10) for i in range(12_000)]  # more than EventAccumulator keeps by default
    write_tb(tmp_path / "tb", "validation/accuracy", values)
    path = next((tmp_path / "tb").glob("events.out.tfevents.*"))
    ours = read_scalars(path)["validation/accuracy"]
    acc = event_accumulator.EventAccumulator(str(path), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    theirs = acc.Scalars("validation/accuracy")
    assert len(ours) == len(theirs) == 12_000
    assert [(p.step, pytest.approx(p.value)) for p in ours[:50]] == [(e.step, e.value) for e in theirs[:50]]


def test_reader_handles_tensor_summaries(tmp_path: Path):
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
    from tensorboard.util import tensor_util

    writer = EventFileWriter(str(tmp_path / "tb"))
    for step, value in ((1, 0.25), (2, 0.5)):
        tensor = tensor_util.make_tensor_proto(value)
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="loss", tensor=tensor)])
        writer.add_event(event_pb2.Event(step=step, wall_time=time.time(), summary=summary))
    writer.close()
    path = next((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert read_scalars(path)["loss"] == [Point(1, 0.25), Point(2, 0.5)]


def test_tensorboard_source_only_reads_files_this_run_wrote(tmp_path: Path):
    old = tmp_path / "work" / "logs" / "exp_001"
    write_tb(old, "val/acc", [0.9])
    for f in old.iterdir():  # as a checkout leaves a committed file: a fresh timestamp
        os.utime(f)
    run = outputs(tmp_path)
    write_tb(tmp_path / "work" / "logs" / "exp_002", "val/acc", [0.1, 0.2, 0.3])
    reading = parse_source("tensorboard:val/acc").read(run)
    assert reading is not None
    assert [p.value for p in reading.points] == pytest.approx([0.1, 0.2, 0.3])
    assert "exp_002" in reading.source and "exp_001" not in reading.source


def test_text_sources(tmp_path: Path):
    run = outputs(tmp_path, "step 1\nval_bpb: 1.25\nstep 2\nval_bpb = 0.98\nsummary acc=0.5 acc=0.75\n")
    assert values_read("line:val_bpb", run) == [1.25, 0.98]
    assert values_read(r"regex:acc=([0-9.]+)", run) == [0.5, 0.75]
    assert parse_source("line:missing").read(run) is None


def test_jsonl_source_reads_log_lines_and_jsonl_files(tmp_path: Path):
    run = outputs(tmp_path, '{"val": {"acc": 0.5}}\nnot json\n{"val": {"acc": 0.6}}\n')
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "metrics.jsonl").write_text('{"val": {"acc": 0.7}}\n')
    reading = parse_source("jsonl:val.acc").read(run)
    assert reading is not None
    assert [p.value for p in reading.points] == [0.5, 0.6, 0.7]


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("tensorflow:x", "unknown --metric-source"),
        ("regex:(a)(b)", "exactly one capture group"),
        ("regex:(", "bad --metric-source regex"),
        ("line:", "give the key"),
        ("jsonl:.x", "give a field name"),
        ("nocolon", "unknown --metric-source"),
    ],
)
def test_bad_sources(spec, fragment):
    with pytest.raises(UsageError, match=fragment):
        parse_source(spec)


def test_aggregates_honour_direction_and_nan():
    points = [Point(i, v) for i, v in enumerate([0.5, 0.9, 0.7, 0.8])]
    assert aggregate(points, "last", maximize=True) == 0.8
    assert aggregate(points, "best", maximize=True) == 0.9
    assert aggregate(points, "best", maximize=False) == 0.5
    assert aggregate(points, "mean-last-2", maximize=True) == pytest.approx(0.75)
    assert math.isnan(aggregate([*points, Point(9, math.nan)], "max", maximize=True))
    assert aggregate([], "last", maximize=True) is None
    with pytest.raises(UsageError):
        validate_aggregate("median")


def test_every_point_at_one_step_is_kept_and_aggregated(tmp_path: Path):
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    run = outputs(tmp_path)
    writer = EventFileWriter(str(tmp_path / "work" / "runs"))  # the writer torch's SummaryWriter uses
    for step, value in ((8, 10), (8, 20), (12, 30), (12, 40)):  # one point per finished episode
        summary = summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag="charts/episodic_return", simple_value=value)]
        )
        writer.add_event(event_pb2.Event(step=step, wall_time=time.time(), summary=summary))
    writer.close()
    reading = parse_source("tensorboard:charts/episodic_return").read(run)
    assert reading is not None
    assert [(p.step, p.value) for p in reading.points] == [(8, 10), (8, 20), (12, 30), (12, 40)]
    assert aggregate(reading.points, "mean-last-4", maximize=True) == 25
    assert aggregate(reading.points, "last", maximize=True) == 40


def test_points_of_several_files_interleave_by_wall_time(tmp_path: Path):
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    run = outputs(tmp_path)
    t0 = time.time()
    for folder, points in (("a", [(1, 1.0, 0), (3, 3.0, 2)]), ("b", [(2, 2.0, 1), (4, 4.0, 3)])):
        writer = EventFileWriter(str(tmp_path / "work" / folder))
        for step, value, at in points:
            summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="r", simple_value=value)])
            writer.add_event(event_pb2.Event(step=step, wall_time=t0 + at, summary=summary))
        writer.close()
    assert values_read("tensorboard:r", run) == [1.0, 2.0, 3.0, 4.0]


def test_a_file_that_existed_before_gives_only_what_the_run_appended(tmp_path: Path):
    (tmp_path / "work").mkdir()
    history = tmp_path / "work" / "history.jsonl"
    history.write_text('{"acc": 0.99}\n')  # committed with the repository
    run = outputs(tmp_path)
    with history.open("a") as fh:
        fh.write('{"acc": 0.4}\n')
    reading = parse_source("jsonl:acc").read(run)
    assert reading is not None
    assert [p.value for p in reading.points] == [0.4]
    untouched = outputs(tmp_path)
    assert parse_source("jsonl:acc").read(untouched) is None


def test_a_census_saved_at_launch_is_what_a_later_reader_uses(tmp_path: Path):
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "m.jsonl").write_text('{"acc": 0.99}\n')
    Census.take(tmp_path / "work").save(tmp_path / "census.json")
    (tmp_path / "work" / "n.jsonl").write_text('{"acc": 0.5}\n')
    run = RunOutputs(tmp_path / "none.log", tmp_path / "run", tmp_path / "work", Census.load(tmp_path / "census.json"))
    assert values_read("jsonl:acc", run) == [0.5]
    assert Census.load(tmp_path / "missing.json").stamps == {}


@pytest.mark.parametrize(
    "line, problem",
    [
        ('{"acc": true}', "is true at line 2"),
        ('{"acc": "0.5"}', 'is "0.5" at line 2'),
        ('{"acc": 1' + "0" * 400 + "}", "too large for a float"),
    ],
)
def test_a_value_that_is_not_a_number_is_a_problem_not_a_result(tmp_path: Path, line: str, problem: str):
    run = outputs(tmp_path, '{"acc": 0.5}\n' + line + "\n")
    reading = parse_source("jsonl:acc").read(run)
    assert reading is not None
    assert reading.problem is not None and problem in reading.problem and "not a number" in reading.problem


def test_null_is_no_value_and_1e400_is_infinite(tmp_path: Path):
    run = outputs(tmp_path, '{"acc": null}\n{"acc": 0.5}\n{"acc": 1e400}\n')
    reading = parse_source("jsonl:acc").read(run)
    assert reading is not None
    assert reading.problem is None and [p.value for p in reading.points] == [0.5, math.inf]
