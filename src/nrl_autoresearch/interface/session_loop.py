"""The unattended loop as the command line and the MCP server both drive it: state the plan, let the face get it
confirmed (a prompt, `--yes`, or the tool's confirm=true), record it, run, and always end with the report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nrl_autoresearch.interface import api
from nrl_autoresearch.runner.engine import Engine


@dataclass(frozen=True)
class Ending:
    """What the loop leaves: the summary and the report's files."""

    summary: str
    report: dict[str, Path]


class SessionLoop:
    """One confirmed run of the loop. Building it validates the proposer and its hypotheses and states the plan
    (`plan`), creating nothing; `start` records the confirmed plan; `run` loops and writes the report."""

    def __init__(self, engine: Engine, proposer_spec: str, *, workers: int, more: int | None = None):
        self.engine, self.spec, self.workers = engine, proposer_spec, workers
        self.proposer, self.plan, self.first = api.loop_plan(engine, proposer_spec, workers, more)

    def start(self) -> None:
        """The plan is confirmed: clear a pause or stop left by an earlier loop and record what runs."""
        engine = self.engine
        engine.set_control(None)
        engine.set_options(proposer=self.spec, workers=self.workers)
        engine.campaign.save()
        engine.checkpoint("plan", self.plan.replace("\n", "; "))

    def run(self, max_runs: int | None = None, *, ended: Callable[[Ending], None] = lambda _: None) -> Ending:
        """Loop until a stop rule, the proposer or `max_runs` ends it; the report is written and `ended` told
        even when the loop ends in an error or an interrupt."""
        from nrl_autoresearch.report.build import build_report
        from nrl_autoresearch.report.text import summary_text

        engine = self.engine
        try:
            engine.run(self.proposer.propose, workers=self.workers, max_runs=max_runs)
        finally:
            engine.close()
            written = build_report(engine)
            ending = Ending(summary_text(engine.campaign, engine.rows(), engine.status()), written)
            ended(ending)
        return ending
