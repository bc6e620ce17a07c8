"""Brev: run outputs and caches on the volume, the repository's .env loaded but never written, free space checked."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from tests.helpers import PY, cli, ledger_rows, make_repo

TRAIN = """\
import hashlib, json, os
for name in ("HF_HOME", "TMPDIR", "WANDB_DIR", "RAY_TMPDIR"):
    print(name, os.environ.get(name))
print("key digest", hashlib.sha256(os.environ.get("WANDB_API_KEY", "").encode()).hexdigest()[:12])
print("key itself", os.environ.get("WANDB_API_KEY"))
print("score:", json.load(open("p.json"))["x"])
"""
SECRET = "wandb-brev-secret-123456"


def test_brev_layout_env_file_and_paths(tmp_path: Path):
    repo = make_repo(tmp_path / "RL", {"t.py": TRAIN, "p.json": '{"x": 1}\n'})
    (repo / ".env").write_text(f'WANDB_API_KEY={SECRET}\nexport HF_TOKEN="hf_brevsecretsecretsecret99"\n# a comment\n')
    volume = tmp_path / "ephemeral"
    volume.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_API_KEY", "HF_TOKEN")} | {"USER": "researcher"}
    init = cli(
        repo,
        "init",
        "--command",
        f"{PY} t.py",
        "--metric",
        "score",
        "--maximize",
        "--params-file",
        "p.json",
        "--campaign",
        "b",
        "--max-experiments",
        "2",
        "--brev",
        "--brev-volume",
        str(volume),
        env=env,
        check=True,
    )
    root = volume / "nemo-rl" / "researcher"
    assert f"Brev: experiments under {root / 'nemo-rl-auto-research' / 'b'}" in init.stdout
    preflight = json.loads(cli(repo, "preflight", "--json", env=env).stdout)
    env_check = next(c for c in preflight["checks"] if c["item"] == "secrets in the repository's .env")
    assert env_check["detail"] == "loaded WANDB_API_KEY, HF_TOKEN"
    cli(repo, "baseline", env=env, check=True)
    row = ledger_rows(repo)[0]
    exp = root / "nemo-rl-auto-research" / "b" / "baseline"
    assert row["log_path"] == str(exp / "run.log")  # absolute, on the volume
    assert sorted(p.name for p in exp.iterdir() if p.is_dir()) == [
        "artifacts",
        "checkpoints",
        "logs",
        "ray",
        "tmp",
        "wandb",
    ]
    log = (exp / "run.log").read_text()
    assert f"HF_HOME {root / 'cache' / 'huggingface'}" in log and f"TMPDIR {exp / 'tmp'}" in log
    assert hashlib.sha256(SECRET.encode()).hexdigest()[:12] in log  # the run got the key from .env
    assert "key itself ***" in log  # the .env's value, printed by the run, is masked in the log we write
    written = [
        p for p in [*(repo / "reports").rglob("*"), *(repo / "session").rglob("*"), *volume.rglob("*")] if p.is_file()
    ]
    for path in written:
        assert SECRET not in path.read_text(errors="replace"), path
    assert not (repo / "reports" / "auto_research" / "b" / "baseline").exists()  # nothing bulky in the checkout


def test_a_missing_brev_volume_is_refused(tmp_path: Path):
    repo = make_repo(tmp_path / "RL", {"t.py": TRAIN, "p.json": '{"x": 1}\n'})
    proc = cli(
        repo,
        "init",
        "--command",
        f"{PY} t.py",
        "--metric",
        "score",
        "--maximize",
        "--brev",
        "--brev-volume",
        str(tmp_path / "nowhere"),
    )
    assert proc.returncode == 2 and "Brev volume" in proc.stderr and not (repo / "reports").exists()
