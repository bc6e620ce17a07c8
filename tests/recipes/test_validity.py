"""NeMo-RL's own refusals, checked before a hypothesis is proposed or launched: every default-plan hypothesis of
every GRPO, DPO, SFT and distillation recipe passes them, and a change that breaks them is refused with the reason."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.git import Git, Snapshot
from nrl_autoresearch.core.history import History
from nrl_autoresearch.proposers.catalog import CatalogProposer
from nrl_autoresearch.recipes import nemo_config as nc
from nrl_autoresearch.recipes import validity, yamledit
from nrl_autoresearch.recipes.nemo_rl import NemoRLRecipe
from tests.helpers import git
from tests.recipes.nemo_fixtures import EXAMPLES, RECIPES, recipe

FAMILIES = ("grpo", "dapo", "vlm_grpo", "dpo", "sft", "distillation")
GRPO = "grpo-llama3.2-1b-instruct-1n8g-fsdp2tp1.v3.yaml"
PLAN = 2  # hypotheses a default plan shows (--max-experiments 3: the baseline and two)


@pytest.fixture(scope="module")
def nemo_repo(tmp_path_factory) -> Path:
    """A git repository holding NeMo-RL's example configs, committed once."""
    repo = tmp_path_factory.mktemp("nemo-rl")
    shutil.copytree(EXAMPLES, repo / "examples")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "configs")
    return repo


@pytest.fixture(scope="module")
def examples_copy(tmp_path_factory) -> Path:
    """A scratch copy of the example configs (a recipe's defaults chain reads its neighbours); each test puts
    back the one file it edits."""
    copy = tmp_path_factory.mktemp("copy")
    shutil.copytree(EXAMPLES, copy / "examples")
    return copy


def _relative(path: Path) -> str:
    return str(path.relative_to(EXAMPLES.parent))


def _family_recipes() -> list[Path]:
    return [p for p in sorted(RECIPES.rglob("*.yaml")) if p.name.startswith(FAMILIES)]


def _empty_history() -> History:
    return History(None, [], [], None, [])  # type: ignore[arg-type]  # the catalog reads rows, tried and notes only


@pytest.mark.parametrize("path", _family_recipes(), ids=lambda p: p.stem)
def test_every_default_plan_hypothesis_passes_nemo_rls_checks(
    path: Path, nemo_repo: Path, examples_copy: Path, tmp_path: Path, monkeypatch
) -> None:
    """Each recipe as shipped, and with each hypothesis a default plan shows applied, passes NeMo-RL's own checks
    (one test per recipe, so that parallel workers share them)."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    rel = _relative(path)
    assert not validity.problems(nc.load_resolved(path)), rel  # the recipe as shipped passes
    proposer = CatalogProposer(NemoRLRecipe(rel), Git(nemo_repo), git(nemo_repo, "rev-parse", "HEAD").strip())
    planned = list(itertools.islice(proposer.candidates(_empty_history()), PLAN))
    for h in planned:
        try:
            yamledit.set_keys(examples_copy / rel, h.sets)  # edits the recipe file only
            assert not validity.problems(nc.load_resolved(examples_copy / rel)), (rel, h.sets)
        finally:
            shutil.copyfile(path, examples_copy / rel)
    assert len(planned) == PLAN, rel


def test_the_families_checked_are_every_nemo_rl_recipe_family_shipped() -> None:
    found = {p.name.split("-")[0] for p in _family_recipes()}
    assert len(_family_recipes()) >= 200 and found >= {"grpo", "dpo", "sft", "distillation"}, found


def test_truncated_importance_sampling_brings_its_companions(nemo_repo: Path) -> None:
    rel = _relative(recipe(GRPO))
    proposer = CatalogProposer(NemoRLRecipe(rel), Git(nemo_repo), git(nemo_repo, "rev-parse", "HEAD").strip())
    candidates = list(proposer.candidates(_empty_history()))
    found = {
        h.sets.get("loss_fn.truncated_importance_sampling_type"): h.sets
        for h in candidates
        if "loss_fn.truncated_importance_sampling_type" in h.sets
    }
    assert found == {
        "tis": {
            "loss_fn.truncated_importance_sampling_type": "tis",
            "loss_fn.use_importance_sampling_correction": "true",
            "loss_fn.truncated_importance_sampling_ratio": "2.0",
        }
    }
    assert not any(
        set(h.sets) == {"loss_fn.truncated_importance_sampling_ratio"} for h in candidates
    )  # no effect while the type is null


def test_a_hand_change_nemo_rl_refuses_is_refused_with_its_reason(nemo_repo: Path) -> None:
    snapshot = Snapshot(Git(nemo_repo), git(nemo_repo, "rev-parse", "HEAD").strip())
    grpo = NemoRLRecipe(_relative(recipe(GRPO)))
    with pytest.raises(UsageError, match="only supported when use_importance_sampling_correction is True"):
        grpo.check_change(snapshot, {"loss_fn.truncated_importance_sampling_type": "tis"})
    dual_clipped = grpo.refusal(snapshot, {"loss_fn.use_cispo": "true", "loss_fn.ratio_clip_c": "10"})
    assert dual_clipped is not None and "use_cispo is incompatible with dual clipping" in dual_clipped
    no_update = grpo.refusal(snapshot, {"policy.train_global_batch_size": "4096"})
    assert no_update is not None and "no update runs" in no_update
    assert grpo.refusal(snapshot, {"loss_fn.ratio_clip_max": "0.28"}) is None


def test_rules_restate_nemo_rls_setup() -> None:
    cfg = nc.load_resolved(recipe(GRPO))
    unread = validity.inert(cfg, "loss_fn.truncated_importance_sampling_ratio")
    assert unread is not None and unread.endswith("is None")
    assert validity.inert(cfg, "loss_fn.ratio_clip_max") is None
    assert validity.data_parallel_size(cfg) == 8
    async_cfg = {**cfg, "grpo": {**cfg["grpo"], "async_grpo": {**cfg["grpo"]["async_grpo"], "enabled": True}}}
    found = " ".join(validity.problems(async_cfg))
    assert "async vLLM engine" in found and "Importance sampling correction must be enabled" in found
