"""Proposers, by the name given to `run --proposer NAME[:ARG]`. A new strategy is one file and one line here."""

from __future__ import annotations

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.proposer import Proposer
from nrl_autoresearch.proposers.agent import AgentProposer
from nrl_autoresearch.proposers.catalog import CatalogProposer
from nrl_autoresearch.proposers.llm import LLMProposer
from nrl_autoresearch.proposers.queue import QueueProposer
from nrl_autoresearch.proposers.random_choice import RandomProposer
from nrl_autoresearch.proposers.search import SearchProposer
from nrl_autoresearch.runner.engine import Engine


def _queue(arg: str, engine: Engine) -> Proposer:
    if not arg:
        raise UsageError("--proposer queue needs a file: queue:hypotheses.yaml")
    return QueueProposer(arg)


def _catalog(arg: str, engine: Engine) -> Proposer:
    return CatalogProposer(engine.recipe, engine.workspace.git, _baseline_commit(engine))


def _baseline_commit(engine: Engine) -> str:
    return engine.workspace.commit_of(engine.workspace.branch("baseline")) or engine.campaign.base_commit


def _random(arg: str, engine: Engine) -> Proposer:
    return RandomProposer(engine.recipe, engine.workspace.git, _baseline_commit(engine), engine.seed_base())


def _search(arg: str, engine: Engine) -> Proposer:
    if not arg:
        raise UsageError("--proposer search needs a space file: search:space.yaml")
    return SearchProposer(arg, engine, seed=engine.seed_base())


def _agent(arg: str, engine: Engine) -> Proposer:
    if not arg:
        raise UsageError('--proposer agent needs the agent command: agent:"claude -p"')
    return AgentProposer(arg, engine)


def _llm(arg: str, engine: Engine) -> Proposer:
    return LLMProposer(engine, model=arg or None, fallback=_catalog("", engine))


PROPOSERS = {
    "queue": _queue,
    "catalog": _catalog,
    "search": _search,
    "agent": _agent,
    "llm": _llm,
    "random": _random,
}


def make_proposer(spec: str, engine: Engine) -> Proposer:
    name, _, arg = spec.partition(":")
    if name not in PROPOSERS:
        raise UsageError(f"unknown --proposer {spec!r}: use one of {', '.join(PROPOSERS)} (queue:FILE for a list)")
    return PROPOSERS[name](arg, engine)
