"""Proposers, by the name given to `run --proposer NAME[:ARG]`. A new strategy is one file and one line here.

Each is built from a `ProposerContext` (the campaign, recipe, repository and three engine calls), never the engine.
"""

from __future__ import annotations

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.proposer import Proposer, ProposerContext
from nrl_autoresearch.proposers.agent import AgentProposer
from nrl_autoresearch.proposers.catalog import CatalogProposer
from nrl_autoresearch.proposers.llm import LLMProposer
from nrl_autoresearch.proposers.queue import QueueProposer
from nrl_autoresearch.proposers.random_choice import RandomProposer
from nrl_autoresearch.proposers.search import SearchProposer


def _queue(arg: str, context: ProposerContext) -> Proposer:
    if not arg:
        raise UsageError("--proposer queue needs a file: queue:hypotheses.yaml")
    return QueueProposer(arg)


def _catalog(arg: str, context: ProposerContext) -> Proposer:
    return CatalogProposer(context.recipe, context.repository.git, context.baseline_commit())


def _random(arg: str, context: ProposerContext) -> Proposer:
    return RandomProposer(context.recipe, context.repository.git, context.baseline_commit(), context.seed)


def _search(arg: str, context: ProposerContext) -> Proposer:
    if not arg:
        raise UsageError("--proposer search needs a space file: search:space.yaml")
    return SearchProposer(arg, context, seed=context.seed)


def _agent(arg: str, context: ProposerContext) -> Proposer:
    if not arg:
        raise UsageError('--proposer agent needs the agent command: agent:"claude -p"')
    return AgentProposer(arg, context)


def _llm(arg: str, context: ProposerContext) -> Proposer:
    return LLMProposer(context, model=arg or None, fallback=_catalog("", context))


PROPOSERS = {
    "queue": _queue,
    "catalog": _catalog,
    "search": _search,
    "agent": _agent,
    "llm": _llm,
    "random": _random,
}


def make_proposer(spec: str, context: ProposerContext) -> Proposer:
    name, _, arg = spec.partition(":")
    if name not in PROPOSERS:
        raise UsageError(f"unknown --proposer {spec!r}: use one of {', '.join(PROPOSERS)} (queue:FILE for a list)")
    return PROPOSERS[name](arg, context)
