"""The shipped skill: in the repository, in the package, installable into a project."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.helpers import cli, make_repo

ROOT = Path(__file__).resolve().parents[2]


def test_skill_is_shipped_and_states_the_workflow():
    text = (ROOT / "skills" / "autoresearch" / "SKILL.md").read_text()
    front = yaml.safe_load(text.split("---")[1])
    assert front["name"] == "autoresearch" and "Do NOT use for bug fixes" in front["description"]
    for command in (
        "autoresearch init",
        "autoresearch baseline",
        "autoresearch try",
        "autoresearch run",
        "autoresearch resume --report-only",
        "autoresearch steer",
        "stop condition not yet met",
    ):
        assert command in text


def test_skill_install_writes_and_refuses_to_clobber(tmp_path: Path):
    repo = make_repo(tmp_path / "p", {"a.txt": "a\n"})
    out = cli(repo, "skill", "install", check=True).stdout
    installed = repo / ".claude" / "skills" / "autoresearch" / "SKILL.md"
    assert (
        str(installed) in out and installed.read_text() == (ROOT / "skills" / "autoresearch" / "SKILL.md").read_text()
    )
    cli(repo, "skill", "install", "--into", "agents", check=True)
    assert (repo / ".agents" / "skills" / "autoresearch" / "SKILL.md").exists()
    installed.write_text("my own edits\n")
    proc = cli(repo, "skill", "install")
    assert proc.returncode == 2 and "--force" in proc.stderr and installed.read_text() == "my own edits\n"
