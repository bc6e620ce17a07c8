"""`llm`, a language model behind an OpenAI-compatible chat endpoint proposes configuration changes.

    AUTORESEARCH_LLM_BASE_URL (or OPENAI_BASE_URL)   http://127.0.0.1:8000/v1
    AUTORESEARCH_LLM_MODEL                           the model name the endpoint serves
    OPENAI_API_KEY (or AUTORESEARCH_LLM_API_KEY)     sent as a bearer token, never written anywhere

The model sees the objective, the ledger, the recipe's settings and the configurations already tried, and
answers one JSON object: {"name", "description", "parent": "baseline" | "best", "set": {dotted key: value}}.
An answer that is not that object, names a key the recipe lacks or repeats a tried configuration is refused
with the reason fed back; after `tries` refusals the catalog proposer takes over for the rest of the loop.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request

import jsonschema

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.history import History
from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.core.names import slugify
from nrl_autoresearch.core.proposer import Proposer, ProposerContext, already_tried, as_text
from nrl_autoresearch.core.redact import MASK, redact
from nrl_autoresearch.proposers.agent import (
    LEDGER_ROWS,
    ideas_text,
    knobs_text,
    ledger_table,
    symptoms_text,
)
from nrl_autoresearch.proposers.catalog import CatalogProposer

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "description", "parent", "set"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 60},
        "description": {"type": "string"},
        "parent": {"enum": ["baseline", "best"]},
        "set": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {"type": ["string", "number", "boolean", "null", "array"]},
        },
    },
}
SYSTEM = (
    "You run one step of an autonomous research campaign on a training recipe: propose the next hypothesis as "
    "the smallest configuration change that tests it. Answer with one JSON object and nothing else: "
    '{"name": "short-kebab-case-name", "description": "one line: what and why", "parent": "baseline" or "best", '
    '"set": {"dotted.key": value}}. Use only keys of the recipe, never repeat a configuration already tried, '
    "follow the person's steering."
)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


class LLMProposer(Proposer):
    name = "llm"

    def __init__(
        self,
        context: ProposerContext,
        *,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        fallback: Proposer | None = None,
        tries: int = 3,
        timeout_s: float = 120.0,
    ):
        """`tries`: answers asked per proposal; when none is valid, `fallback` (the catalog) takes over for good."""
        env = os.environ
        self.base_url = (base_url or env.get("AUTORESEARCH_LLM_BASE_URL") or env.get("OPENAI_BASE_URL") or "").rstrip(
            "/"
        )
        self.model = model or env.get("AUTORESEARCH_LLM_MODEL") or ""
        self._key = api_key or env.get("OPENAI_API_KEY") or env.get("AUTORESEARCH_LLM_API_KEY") or ""
        if not self.base_url or not self.model:
            raise UsageError(
                "--proposer llm needs an endpoint and a model: set AUTORESEARCH_LLM_BASE_URL (or "
                "OPENAI_BASE_URL) and AUTORESEARCH_LLM_MODEL"
            )
        self.proposer_context = context
        self.fallback = fallback or CatalogProposer(context.recipe, context.repository.git, context.baseline_commit())
        self.tries = tries
        self.timeout_s = timeout_s
        self.fell_back = False

    def propose(self, history: History) -> Hypothesis | None:
        if self.fell_back:
            return self.fallback.propose(history)
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": self.context(history)}]
        why = ""
        for _ in range(self.tries):
            try:
                answer = self.chat(messages)
            except UsageError as err:
                why = str(err)
                continue
            hypothesis, why = self._validated(answer, history)
            if hypothesis is not None:
                return hypothesis
            messages += [
                {"role": "assistant", "content": answer},
                {"role": "user", "content": f"Refused: {why}. Answer again with the JSON object only."},
            ]
        self.fell_back = True
        self.proposer_context.say(
            self._scrub(
                f"llm proposer: no valid hypothesis in {self.tries} answers (last: {why}); "
                "the catalog proposer takes over"
            )
        )
        return self.fallback.propose(history)

    def preview(self, history: History, n: int = 3) -> list[str]:
        return [
            self._scrub(
                f"model {self.model} at {self.base_url} proposes configuration changes as JSON "
                f"({self.tries} tries per proposal, then the catalog)"
            )
        ]

    def context(self, history: History) -> str:
        """What the model is told: objective, steering, ledger, best keep, settings, tried configurations, ideas."""
        c = self.proposer_context.campaign
        tried = [t.effective for t in history.tried if t.effective][-LEDGER_ROWS:]
        top = history.best
        parts = [
            f"Objective: {c.objective.direction} {c.objective.metric_name}"
            + (f"; goal: {c.options['goal']}" if c.options.get("goal") else ""),
            "Steering from the person:\n" + "\n".join(f"- {s}" for s in history.steering) if history.steering else "",
            "Ledger:\n" + ledger_table(history.rows, c.objective.metric_name),
            "Symptoms of recent runs:\n" + symptoms_text(history) if history.diagnoses else "",
            f"Best keep: row {top.index}, {top.branch.rsplit('/', 1)[1]}" if top else "Best keep: none yet",
            "Settings of the recipe (current values at the baseline):\n"
            + knobs_text(self.proposer_context, c.base_commit),
            "Configurations already tried (changes against the baseline):\n" + "\n".join(json.dumps(t) for t in tried),
            "Exploration ideas:\n" + ideas_text(),
        ]
        return redact("\n\n".join(p for p in parts if p))

    def chat(self, messages: list[dict]) -> str:
        """One chat completion: the answer's text. Any transport or protocol problem is a UsageError."""
        body = json.dumps({"model": self.model, "messages": messages, "temperature": 0.2}).encode()
        headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {self._key}"} if self._key else {})
        request = urllib.request.Request(f"{self.base_url}/chat/completions", data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return str(json.load(response)["choices"][0]["message"]["content"])
        except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError) as err:
            raise UsageError(self._scrub(f"the endpoint {self.base_url} gave no answer: {err}")) from None

    def _validated(self, answer: str, history: History) -> tuple[Hypothesis | None, str]:
        """The answer as a hypothesis, or why it is refused."""
        try:
            data = json.loads(_FENCE.sub("", answer.strip()))
        except json.JSONDecodeError as err:
            return None, f"not a JSON object ({err})"
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(SCHEMA).iter_errors(data))
        if error is not None:
            return None, f"{'/'.join(map(str, error.absolute_path)) or 'the answer'}: {error.message}"
        h = Hypothesis(
            slugify(data["name"]),
            redact(data["description"]),
            data["parent"],
            sets={str(k): as_text(v) for k, v in data["set"].items()},
        )
        try:
            self.proposer_context.check(h)
        except UsageError as err:
            return None, str(err)
        if already_tried(h, history):
            return None, "this configuration was already tried; propose a different change"
        return h, ""

    def _scrub(self, text: str) -> str:
        return redact(text.replace(self._key, MASK) if len(self._key) >= 6 else text)
