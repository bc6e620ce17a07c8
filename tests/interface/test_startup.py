"""Starting the command line loads none of the heavy libraries: `--version`, `--help` and `status` of a command
campaign run in a fresh interpreter, whose imports are read from `python -X importtime`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nrl_autoresearch.interface.cli import STARTUP_FREE
from tests.helpers import PY, cli, score_repo


def heavy_imports(cwd: Path, *argv: str) -> tuple[list[str], str]:
    """The heavy top-level packages `python ARGV` imports in a new process, and its stdout."""
    proc = subprocess.run(
        [PY, "-X", "importtime", *argv], cwd=cwd, capture_output=True, text=True, timeout=120, check=True
    )
    modules = {
        line.split("|")[-1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    return sorted(modules & set(STARTUP_FREE)), proc.stdout


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = score_repo(tmp_path_factory.mktemp("startup") / "project")
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
        check=True,
    )
    return repo


@pytest.mark.parametrize(
    "args, says",
    [(("--version",), "version"), (("--help",), "autoresearch init"), (("status",), "stop condition not yet met")],
)
def test_starting_loads_no_heavy_library(campaign: Path, args: tuple[str, ...], says: str):
    heavy, out = heavy_imports(campaign, "-m", "nrl_autoresearch", *args)
    assert says in out
    assert heavy == [], f"autoresearch {' '.join(args)} imported {', '.join(heavy)}"


def test_the_servers_and_recipes_libraries_are_seen_where_they_are_loaded(campaign: Path):
    """What the check reads does list heavy imports: the MCP server loads its SDK, NeMo-RL recipes load OmegaConf
    and ruamel (Hydra only where overrides are applied)."""
    assert "mcp" in heavy_imports(campaign, "-c", "import nrl_autoresearch.interface.mcp_server")[0]
    assert {"omegaconf", "ruamel"} <= set(heavy_imports(campaign, "-c", "import nrl_autoresearch.recipes.nemo_rl")[0])
