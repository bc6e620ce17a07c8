"""A params file edited by `try --set` keeps its layout: one changed value is one changed line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import PY, cli, git, ledger_rows, make_repo

JSON = '{\n    "optim": {"lr": 0.01,   "betas": [0.9, 0.95]},\n    "name": "café",\n    "layers": [4, 4]\n}'
YAML = """\
# model settings
optim:
    lr: 0.01      # the learning rate
    betas:
      - 0.9
      - 0.95
name: 'a long description that is longer than eighty characters, which a dumper would fold onto two lines'
layers: [4,4]
"""
TOML = """\
# model settings
name    = "tiny"   # aligned
[optim]
lr      = 0.01
betas   = [ 0.9, 0.95 ]
"""


@pytest.mark.parametrize(
    "name, text, key, line",
    [
        ("params.json", JSON, "optim.lr", '    "optim": {"lr": 0.02,   "betas": [0.9, 0.95]},'),
        ("params.yaml", YAML, "optim.lr", "    lr: 0.02      # the learning rate"),
        ("params.toml", TOML, "optim.lr", "lr      = 0.02"),
    ],
)
def test_one_changed_value_is_one_changed_line(tmp_path: Path, name: str, text: str, key: str, line: str):
    repo = make_repo(tmp_path / "r", {"train.py": 'print("score: 1")\n', name: text})
    cli(
        repo,
        "init",
        "--command",
        f"{PY} train.py",
        "--metric",
        "score",
        "--maximize",
        "--params-file",
        name,
        "--max-experiments",
        "2",
        check=True,
    )
    cli(repo, "baseline", check=True)
    cli(repo, "try", "lr", "--set", f"{key}=0.02", check=True)
    row = ledger_rows(repo)[1]
    assert git(repo, "diff", "--numstat", row["parent_commit"], row["commit"]) == f"1\t1\t{name}\n"
    edited = git(repo, "show", f"{row['commit']}:{name}")
    before, after = text.splitlines(), edited.splitlines()
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b]
    assert len(before) == len(after) and len(changed) == 1 and after[changed[0]] == line
