"""`search:SPACE.yaml`: the space validated up front, no configuration twice, a study that continues from the ledger."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from nrl_autoresearch.core.campaign import load
from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.ledger import best
from nrl_autoresearch.proposers.search import SearchProposer, load_space
from nrl_autoresearch.runner.engine import Engine
from tests.helpers import git, ledger_rows
from tests.proposers.support import cli, init, project

SPACE = """\
lr: {low: 1e-3, high: 1.0, log: true}
layers: {low: 1, high: 8, int: true}
bias: {choices: [true, false]}
"""


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("lr: {low: 1, high: 2, step: 1}\n", "key 'lr' of space.yaml has unknown fields ['step']"),
        ("lr: {low: 2, high: 2}\n", "key 'lr' of space.yaml: low 2 must be below high 2"),
        ("opt: {choices: []}\n", "key 'opt' of space.yaml: choices must be a non-empty list"),
        ("lr: {low: 0, high: 1, log: true}\n", "key 'lr' of space.yaml: a log scale needs low above 0"),
        ("n: {low: 1.5, high: 4, int: true}\n", "key 'n' of space.yaml: an int range needs whole low and high"),
        ("opt: {choices: [a, b], low: 1}\n", "key 'opt' of space.yaml: choices cannot be combined"),
        ("lr: 0.1\n", "key 'lr' of space.yaml must be a mapping"),
        ("lr: {high: 1}\n", "key 'lr' of space.yaml needs numbers low and high"),
        ("[1, 2]\n", "must map dotted keys"),
    ],
)
def test_space_validation_names_the_key_and_the_file(tmp_path: Path, text: str, fragment: str):
    (tmp_path / "space.yaml").write_text(text)
    with pytest.raises(UsageError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        load_space(tmp_path / "space.yaml")


def test_unknown_key_is_refused_before_the_campaign_starts(tmp_path: Path):
    repo = project(tmp_path / "r")
    init(repo, 3)
    (tmp_path / "space.yaml").write_text("lrr: {low: 0.001, high: 1}\n")
    with pytest.raises(UsageError, match="search space space.yaml: unknown key 'lrr'.*closest existing keys: lr"):
        SearchProposer(tmp_path / "space.yaml", Engine(load(repo)).proposer_context())
    assert not git(repo, "branch", "--list", "autoresearch/*").strip()


def test_search_never_repeats_a_configuration_and_continues_its_study(tmp_path: Path):
    repo = project(tmp_path / "r")
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    init(repo, 6)
    cli(repo, "run", "--proposer", f"search:{space}", "--yes")
    first = ledger_rows(repo)
    assert [r["branch"].rsplit("/", 1)[1] for r in first] == ["baseline", *(f"search-{i}" for i in range(2, 7))]
    cli(repo, "run", "--proposer", f"search:{space}", "--yes", "--continue", "3")
    rows = ledger_rows(repo)
    configs = [git(repo, "show", f"{r['commit']}:params.json") for r in rows]
    assert len(rows) == 9 and len(set(configs)) == 9, configs
    assert all(
        "lr=" in r["description"] and "layers=" in r["description"] and "bias=" in r["description"] for r in rows[1:]
    )

    engine = Engine(load(repo))
    proposer = SearchProposer(space, engine.proposer_context(), seed=engine.seed_base())
    history = engine.history()
    study, _ = proposer.study(history)
    assert len(study.trials) == 9  # the baseline (its values read from the recipe) and every search attempt
    following = proposer.propose(history)
    assert following is not None
    assert following.name == "search-10" and following.sets not in [t.effective for t in history.tried]
    assert proposer.propose(history) == following  # seeded by the ledger: a resumed campaign proposes the same

    # a fresh study (only the baseline known) proposes what the first run began with, not what the resumed one does
    fresh = replace(history, rows=history.rows[:1], tried=history.tried[:1], best=best(history.rows[:1], maximize=True))
    proposed = proposer.propose(fresh)
    assert proposed is not None and proposed.sets == history.tried[1].effective != following.sets


def test_a_new_best_keep_is_exploited_with_a_local_step(tmp_path: Path):
    repo = project(tmp_path / "r")
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    init(repo, 3)
    queue = tmp_path / "q.json"
    queue.write_text('[{"name": "good", "set": {"lr": 0.1, "layers": 6, "bias": true}}]')
    cli(repo, "run", "--proposer", f"queue:{queue}", "--yes")
    engine = Engine(load(repo))
    best_row = engine.best_row()
    assert best_row is not None and best_row.branch.endswith("/good")
    step = SearchProposer(space, engine.proposer_context()).propose(engine.history())
    assert step is not None
    assert step.description.startswith("search (local step around best keep good)")
    assert step.parent == "baseline" and set(step.sets) == {"lr", "layers", "bias"}
