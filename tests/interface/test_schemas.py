"""Every `--json` output of the real command line, on real repositories, against its JSON Schema in `schemas/`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

import nrl_autoresearch
from tests.helpers import PY, cli, git, score_repo

SCHEMAS = Path(nrl_autoresearch.__file__).parent / "schemas"
NAMES = ("status", "ledger", "recipes", "preflight", "resume", "init")
FIXTURE = Path(__file__).parents[1] / "fixtures" / "nemo-rl"
RECIPE = "examples/configs/recipes/llm/grpo-toy-digitsum-1n0g.yaml"


def schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.json").read_text())


def assert_valid(name: str, text: str) -> dict:
    data = json.loads(text)
    validator = Draft202012Validator(schema(name))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]
    assert not errors, f"{name}.json rejects the output:\n" + "\n".join(errors)
    return data


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real demo campaign with its baseline and one experiment."""
    dest = tmp_path_factory.mktemp("schemas") / "demo"
    cli(dest.parent, "demo", "--dir", str(dest), "--experiments", "1", "--baseline-repeats", "1", check=True)
    return dest


@pytest.mark.parametrize("name", NAMES)
def test_schema_is_valid_and_documents_every_field(name: str):
    s = schema(name)
    Draft202012Validator.check_schema(s)
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema" and s["additionalProperties"] is False

    def walk(node: dict, where: str) -> None:
        for key, sub in node.get("properties", {}).items():
            documented = "description" in sub or "$ref" in sub or key == "kind"
            assert documented, f"{name}.json: {where}/{key} has no description"
            walk(sub, f"{where}/{key}")
        for sub in [*node.get("$defs", {}).values(), *node.get("oneOf", []), *node.get("anyOf", [])]:
            walk(sub, where)
        if isinstance(node.get("items"), dict):
            walk(node["items"], where + "[]")

    walk(s, name)


def test_the_row_is_defined_alike_wherever_it_appears():
    rows = {name: schema(name)["$defs"]["row"] for name in ("status", "ledger", "resume")}
    assert rows["status"] == rows["ledger"] == rows["resume"]
    assert list(rows["ledger"]["properties"]) == schema("ledger")["properties"]["columns"]["const"]


@pytest.mark.parametrize(
    "command,name",
    [
        (["status"], "status"),
        (["ledger"], "ledger"),
        (["recipes"], "recipes"),
        (["preflight"], "preflight"),
        (["resume", "--report-only"], "resume"),
    ],
)
def test_cli_json_of_a_demo_campaign_matches_its_schema(demo: Path, command: list[str], name: str):
    data = assert_valid(name, cli(demo, *command, "--json", check=True).stdout)
    if name == "ledger":
        assert [r["status"] != "crash" and r["metric_value"] is not None for r in data["rows"]] == [True, True]


def test_init_json_of_both_recipe_kinds_matches_its_schema(demo: Path, tmp_path: Path):
    nemo = assert_valid(
        "init",
        cli(
            demo,
            "init",
            "--recipe",
            RECIPE,
            "--runner",
            PY,
            "--campaign",
            "second",
            "--budget",
            "2h",
            "--target",
            "val:accuracy>=0.9",
            "--json",
            check=True,
        ).stdout,
    )
    assert nemo["campaign"]["recipe"]["kind"] == "nemo-rl" and nemo["campaign"]["rules"]["deadline"] is not None
    repo = score_repo(tmp_path / "project")
    (repo / "scratch.py").write_text("print('left alone')\n")
    command = assert_valid(
        "init",
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
            "--json",
            check=True,
        ).stdout,
    )
    assert command["campaign"]["recipe"]["kind"] == "command" and command["unrelated_changes"] == ["?? scratch.py"]
    empty = assert_valid("status", cli(repo, "status", "--json", check=True).stdout)
    assert empty["latest"] is None and empty["stop"]["trigger"] is None


def test_recipes_json_of_the_nemo_rl_fixture_matches_its_schema(tmp_path: Path):
    checkout = tmp_path / "nemo-rl"
    shutil.copytree(FIXTURE, checkout)
    git(checkout, "init", "-q")
    data = assert_valid("recipes", cli(checkout, "recipes", "--json", check=True).stdout)
    assert len(data["recipes"]) > 200
