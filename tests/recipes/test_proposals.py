"""Proposals from the random and search proposers on NeMo-RL's own recipes: each brings the settings its knob
requires, none changes a setting NeMo-RL would not read, and every one passes NeMo-RL's own refusals."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nrl_autoresearch.core.campaign import load
from nrl_autoresearch.core.git import Git, Snapshot
from nrl_autoresearch.core.history import History, Tried
from nrl_autoresearch.proposers.random_choice import RandomProposer
from nrl_autoresearch.proposers.search import SearchProposer
from nrl_autoresearch.recipes import knobs, validity, yamledit
from nrl_autoresearch.recipes import nemo_config as nc
from nrl_autoresearch.recipes.nemo_rl import NemoRLRecipe
from nrl_autoresearch.runner.engine import Engine
from tests.helpers import cli, git
from tests.recipes.nemo_fixtures import EXAMPLES, RECIPES, recipe

FAMILIES = ("grpo", "dapo", "vlm_grpo", "dpo", "sft", "distillation")
GRPO = "grpo-llama3.2-1b-instruct-1n8g-fsdp2tp1.v3.yaml"
TIS = "loss_fn.truncated_importance_sampling_type"


@pytest.fixture(scope="module")
def nemo_repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("nemo-rl") / "RL"
    shutil.copytree(EXAMPLES, repo / "examples")
    (repo / "examples" / "run_grpo.py").write_text("print('GRPO')\n")
    git(repo.parent, "init", "-q", "-b", "main", str(repo))
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "configs")
    return repo


def _head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def _rel(path: Path) -> str:
    return str(path.relative_to(EXAMPLES.parent))


def _one_per_family() -> list[Path]:
    """The first recipe of each family: the families differ in their knobs, the recipes of one family far less."""
    found = sorted(RECIPES.rglob("*.yaml"))
    return [next(p for p in found if p.name.startswith(f"{family}-")) for family in FAMILIES]


def _assert_runs_and_matters(path: Path, sets: dict[str, str], tmp_path: Path) -> None:
    """The change applied to a copy: NeMo-RL accepts it, every knob turned on has its requirements, and no key it
    changes is one NeMo-RL ignores under it."""
    copy = tmp_path / "check" / _rel(path)
    shutil.rmtree(tmp_path / "check", ignore_errors=True)
    shutil.copytree(EXAMPLES, tmp_path / "check" / "examples")
    before = nc.load_resolved(copy)
    yamledit.set_keys(copy, sets)
    after = nc.load_resolved(copy)
    assert not validity.problems(after), (path.name, sets)
    for key in sets:
        k = knobs.knob(key)
        if k is not None and nc.get_dotted(after, key):
            assert all(nc.get_dotted(after, need) == holds for need, holds in k.requires), (path.name, key)
        if nc.get_dotted(before, key, None) != nc.get_dotted(after, key, None):
            assert validity.inert(after, key) is None, (path.name, key)


def test_prepared_changes_bring_companions_and_skip_what_changes_nothing(nemo_repo: Path) -> None:
    grpo = NemoRLRecipe(_rel(recipe(GRPO)))
    snapshot = Snapshot(Git(nemo_repo), _head(nemo_repo))
    sets, _ = grpo.prepared(snapshot, {TIS: "tis"})
    assert sets == {
        TIS: "tis",
        "loss_fn.use_importance_sampling_correction": "true",
        "loss_fn.truncated_importance_sampling_ratio": "2.0",
    }
    assert grpo.prepared(snapshot, {"loss_fn.truncated_importance_sampling_ratio": "5"}) == (
        None,
        (
            "loss_fn.truncated_importance_sampling_ratio has no effect while "
            "loss_fn.truncated_importance_sampling_type is None"
        ),
    )
    both = {"policy.sequence_packing.enabled": "true", "policy.dynamic_batching.enabled": "true"}
    assert grpo.prepared(snapshot, both)[1].startswith("policy.sequence_packing.enabled cannot be on with")
    conflict = {TIS: "tis", "loss_fn.use_importance_sampling_correction": "false"}
    assert "needs loss_fn.use_importance_sampling_correction=True" in grpo.prepared(snapshot, conflict)[1]
    lr = nc.get_dotted(nc.load_resolved(recipe(GRPO)), "policy.optimizer.kwargs.lr")
    assert grpo.prepared(snapshot, {"policy.optimizer.kwargs.lr": str(lr)}) == (
        None,
        "the change sets every key to its value",
    )


@pytest.mark.parametrize("path", _one_per_family(), ids=lambda p: p.name.split("-")[0])
def test_random_proposals_run_and_matter(nemo_repo: Path, tmp_path: Path, path: Path) -> None:
    proposer = RandomProposer(NemoRLRecipe(_rel(path)), Git(nemo_repo), _head(nemo_repo), seed=7)
    h = proposer.propose(History(None, [], [], None, []))  # type: ignore[arg-type]  # random reads tried, best
    assert h is not None and h.parent == "baseline"
    _assert_runs_and_matters(path, h.sets, tmp_path)


def test_random_proposals_of_truncated_importance_sampling_bring_its_companions(nemo_repo: Path) -> None:
    proposer = RandomProposer(NemoRLRecipe(_rel(recipe(GRPO))), Git(nemo_repo), _head(nemo_repo), seed=0)
    proposer.knobs = [k for k in proposer.knobs if k.key in (TIS, "loss_fn.truncated_importance_sampling_ratio")]
    h = proposer.propose(History(None, [], [], None, []))  # type: ignore[arg-type]
    assert h is not None and h.sets[TIS] == "tis" and h.sets["loss_fn.use_importance_sampling_correction"] == "true"


def test_search_proposals_bring_companions_and_pass_nemo_rls_checks(nemo_repo: Path, tmp_path: Path) -> None:
    env = {
        "CUDA_VISIBLE_DEVICES": "",
        "HF_HOME": str(tmp_path / "hf"),
        "HF_TOKEN": "hf_test",
        "HF_ENDPOINT": "http://127.0.0.1:9",
    }  # the Hub unreachable: the model line says unknown
    (nemo_repo / ".venv").mkdir(exist_ok=True)
    cli(
        nemo_repo,
        "init",
        "--recipe",
        _rel(recipe(GRPO)),
        "--launcher",
        "local",
        "--runner",
        "python",
        "--campaign",
        "search",
        "--json",
        env=env,
        check=True,
    )
    space = tmp_path / "space.yaml"
    # icepop without truncated_importance_sampling_ratio_min is refused by NeMo-RL: never proposed
    space.write_text(f"{TIS}: {{choices: [tis, icepop]}}\nloss_fn.ratio_clip_max: {{low: 0.2, high: 0.3}}\n")
    engine = Engine(load(nemo_repo, "search"))
    proposer = SearchProposer(space, engine.proposer_context(), seed=3)
    history, chosen = engine.history(), []
    for _ in range(3):
        h = proposer.propose(history)
        assert h is not None
        chosen.append(h.sets[TIS])
        assert h.sets["loss_fn.use_importance_sampling_correction"] == "true"
        _assert_runs_and_matters(recipe(GRPO), h.sets, tmp_path)
        assert all(isinstance(v, str) for v in h.sets.values())  # text, as the ledger records a change
        tried = Tried(index=len(history.tried) + 2, name=h.name, sets=h.sets, effective=h.sets)
        history = History(history.campaign, history.rows, [*history.tried, tried], history.best, [])
    assert chosen == ["tis"] * 3
