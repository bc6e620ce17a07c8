"""The loop asks the proposer outside the bookkeeping lock: a proposer that thinks for an hour never holds up the
workers recording their rows."""

from __future__ import annotations

import threading
from pathlib import Path

from nrl_autoresearch.core import campaign as campaigns
from nrl_autoresearch.core.history import History
from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.runner.engine import Engine
from tests.helpers import PY, cli, score_repo

INIT = [
    "init",
    "--command",
    f"{PY} train.py",
    "--metric",
    "val_score",
    "--maximize",
    "--params-file",
    "params.json",
    "--campaign",
    "l",
    "--max-experiments",
    "3",
]


def test_the_bookkeeping_lock_is_free_while_the_proposer_thinks(tmp_path: Path):
    repo = score_repo(tmp_path / "repo")
    cli(repo, *INIT, check=True)
    free: list[bool] = []
    seen: list[History] = []

    def propose(history: History) -> Hypothesis | None:
        def worker() -> None:  # what a worker thread recording its row needs
            got = engine.context.lock.acquire(timeout=5)
            free.append(got)
            if got:
                engine.context.lock.release()

        other = threading.Thread(target=worker)
        other.start()
        other.join()
        seen.append(history)
        return Hypothesis("lr", sets={"lr": "0.1"}) if len(seen) == 1 else None

    with Engine(campaigns.load(repo), say=lambda _: None) as engine:
        engine.run(propose)
        assert [r.branch.rsplit("/", 1)[1] for r in engine.rows()] == ["baseline", "lr"]
    assert free == [True, True]
    assert [len(h.rows) for h in seen] == [1, 2] and seen[1].tried[-1].effective == {"lr": "0.1"}
