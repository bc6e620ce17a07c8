"""`search:SPACE.yaml`, model-based search over a declared space with Optuna's ask/tell (TPE, seeded).

    policy.optimizer.kwargs.lr: {low: 1.0e-7, high: 1.0e-5, log: true}
    grpo.num_generations_per_prompt: {low: 4, high: 32, int: true}
    policy.precision: {choices: [bfloat16, float16]}

Each proposal sets every key of the space on top of the baseline, so its effective configuration is complete,
with the settings the recipe needs alongside; a point the recipe would refuse, or where a key has no effect, is
told to the study as a failed trial and never proposed.
The study lives in memory and is rebuilt from the ledger at each proposal: every earlier attempt is a trial
(its row's value; a crash a failed trial; a run in flight a running one), and the sampler is seeded by the trial
count, so a resumed campaign proposes what an uninterrupted one would. A result that just became the best keep
is exploited at once with a local step around it; otherwise TPE chooses.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeGuard

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.git import Snapshot
from nrl_autoresearch.core.history import History, Tried
from nrl_autoresearch.core.hypothesis import Hypothesis
from nrl_autoresearch.core.names import BASELINE
from nrl_autoresearch.core.proposer import (
    Proposer,
    ProposerContext,
    already_tried,
    as_text,
    next_number,
    norm,
)
from nrl_autoresearch.recipes.params import load_text, parse_value

try:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.trial import FrozenTrial, TrialState, create_trial

    Distribution = CategoricalDistribution | FloatDistribution | IntDistribution  # the kinds a space file holds
except ImportError:  # the optional extra 'search'
    optuna = None  # type: ignore[assignment]

_FIELDS = {"low", "high", "log", "int", "choices"}
STEP = 0.1  # a local step's spread, as a fraction of the range (of its logarithm on a log scale)


class SearchProposer(Proposer):
    name = "search"

    def __init__(
        self, space_path: str | Path, context: ProposerContext, *, seed: int = 0, startup: int = 4, max_asks: int = 50
    ):
        """`startup`: trials (earlier attempts included) before TPE models the space; `max_asks`: proposals tried
        per call before giving up on finding an untried configuration."""
        if optuna is None:
            raise UsageError("--proposer search needs Optuna: pip install 'nrl-autoresearch[search]'")
        if not space_path:
            raise UsageError("--proposer search needs a space file: search:space.yaml")
        self.path = Path(space_path).resolve()
        self.space = load_space(self.path)
        self.seed, self.startup, self.max_asks = seed, startup, max_asks
        self.maximize = context.campaign.objective.maximize
        self.baseline_branch = context.repository.branch(BASELINE)
        self.recipe = context.recipe
        self._snapshot = Snapshot(context.repository.git, context.campaign.base_commit)
        probe = {k: _value_text(d, _any_value(d)) for k, d in self.space.items()}
        try:  # every key exists (with the settings it needs alongside, where the recipe names them)
            context.check(Hypothesis("search", sets=self.recipe.prepared(self._snapshot, probe)[0] or probe))
        except UsageError as err:
            raise UsageError(f"search space {self.path.name}: {err}") from None
        knobs = self.recipe.knobs(self._snapshot)
        self.baseline = {k.key: k.current for k in knobs if k.key in self.space}
        optuna.logging.set_verbosity(optuna.logging.WARNING)

    def propose(self, history: History) -> Hypothesis | None:
        study, known = self.study(history)
        index = next_number(history)
        step = self._local_step(history, random.Random(self.seed + len(study.trials)))
        if step is not None:
            study.enqueue_trial(step[1])
        model = "tpe" if sum(t.state == TrialState.COMPLETE for t in study.trials) >= self.startup else "random start"
        for ask in range(self.max_asks):
            trial = study.ask(dict(self.space))
            how = f"local step around best keep {step[0]}" if step and ask == 0 else model
            h = self._hypothesis(trial.params, index, how)
            earlier = known.get(self._key(h.sets))
            sets, _ = self.recipe.prepared(self._snapshot, h.sets) if earlier is None else (None, "")
            if sets is not None and not already_tried(h := replace(h, sets=sets), history):
                return h
            if earlier is not None and earlier.state == TrialState.COMPLETE:
                study.tell(trial, earlier.value)
            else:
                study.tell(trial, state=TrialState.FAIL)
        return None

    def preview(self, history: History, n: int = 3) -> list[str]:
        """The next proposal when the ledger has results (before the baseline it depends on the baseline's)."""
        first = self.propose(history) if history.rows else None
        shown = [f"{first.name}: {first.description}"] if first else []
        return shown + [
            f"TPE (seed {self.seed}) over the {len(self.space)} keys of {self.path.name}, "
            f"with the {len(history.rows)} results so far as earlier trials"
        ]

    def study(self, history: History) -> tuple[optuna.Study, dict[tuple, FrozenTrial]]:
        """The study the ledger implies, and its trials by configuration (the latest of each)."""
        trials = [t for t in (self._trial(a, history) for a in history.tried) if t is not None]
        sampler = optuna.samplers.TPESampler(seed=self.seed + len(trials), n_startup_trials=self.startup)
        study = optuna.create_study(direction="maximize" if self.maximize else "minimize", sampler=sampler)
        study.add_trials(trials)
        known = {self._key({k: _value_text(d, t.params[k]) for k, d in self.space.items()}): t for t in trials}
        return study, known

    def _trial(self, attempt: Tried, history: History) -> FrozenTrial | None:
        """An earlier attempt as a trial, when every key of the space has a value in range for it."""
        params = self._params(attempt.effective)
        if params is None:
            return None
        row = next((r for r in history.rows if r.index == attempt.index), None)
        if row is None:
            return create_trial(state=TrialState.RUNNING, params=params, distributions=dict(self.space))
        if row.status == "crash" or row.metric_value is None or not math.isfinite(row.metric_value):
            return create_trial(state=TrialState.FAIL, params=params, distributions=dict(self.space))
        return create_trial(value=row.metric_value, params=params, distributions=dict(self.space))

    def _params(self, effective: dict) -> dict[str, Any] | None:
        """The space's values in an effective configuration (the baseline's where it does not set a key)."""
        values = {k: effective.get(k, self.baseline.get(k)) for k in self.space}
        params = {k: _param(self.space[k], v) for k, v in values.items()}
        return None if any(v is None for v in params.values()) else params

    def _local_step(self, history: History, rng: random.Random) -> tuple[str, dict] | None:
        """(name, params) of a step around the best keep, when the latest result is that best keep."""
        top = history.best
        latest = max(history.rows, key=lambda r: r.index, default=None)
        if top is None or latest is None or top.branch == self.baseline_branch or latest.commit != top.commit:
            return None
        params = self._params(history.effective_of(top.commit))
        if params is None:
            return None
        return top.branch.rsplit("/", 1)[1], {k: _perturb(d, params[k], rng) for k, d in self.space.items()}

    def _hypothesis(self, params: dict[str, Any], index: int, how: str) -> Hypothesis:
        sets = {k: _value_text(d, params[k]) for k, d in self.space.items()}
        listing = ", ".join(f"{k}={v}" for k, v in sets.items())
        return Hypothesis(f"search-{index}", f"search ({how}): {listing}", parent=BASELINE, sets=sets)

    def _key(self, sets: dict[str, str]) -> tuple:
        return tuple(norm(sets[k]) for k in self.space)


def load_space(path: Path) -> dict[str, Distribution]:
    """Every key's range or choices, validated before the campaign starts; a bad entry is named with the file."""
    if not path.is_file():
        raise UsageError(f"search space {str(path)!r} does not exist")
    doc = load_text(path.name, path.read_text())
    if not isinstance(doc, dict) or not doc:
        raise UsageError(f"search space {path.name} must map dotted keys to {{low, high}} ranges or {{choices}}")
    return {str(key): _distribution(f"key {key!r} of {path.name}", spec) for key, spec in doc.items()}


def _distribution(where: str, spec: Any) -> Distribution:
    if not isinstance(spec, dict):
        raise UsageError(
            f"{where} must be a mapping such as {{low: 1.0e-4, high: 1.0e-2, log: true}} or {{choices: [a, b]}}"
        )
    unknown = set(spec) - _FIELDS
    if unknown:
        raise UsageError(f"{where} has unknown fields {sorted(unknown)}: use {sorted(_FIELDS)}")
    if "choices" in spec:
        return _categorical(where, spec)
    low, high = spec.get("low"), spec.get("high")
    if not (_is_number(low) and _is_number(high)):
        raise UsageError(f"{where} needs numbers low and high, or choices")
    if low >= high:
        raise UsageError(f"{where}: low {low} must be below high {high}")
    log, whole = spec.get("log", False), spec.get("int", False)
    if not (isinstance(log, bool) and isinstance(whole, bool)):
        raise UsageError(f"{where}: log and int are true or false")
    if log and low <= 0:
        raise UsageError(f"{where}: a log scale needs low above 0")
    if whole:
        if low != int(low) or high != int(high):
            raise UsageError(f"{where}: an int range needs whole low and high")
        return IntDistribution(int(low), int(high), log=log)
    return FloatDistribution(float(low), float(high), log=log)


def _categorical(where: str, spec: dict) -> CategoricalDistribution:
    choices = spec["choices"]
    if len(spec) > 1:
        raise UsageError(f"{where}: choices cannot be combined with {sorted(set(spec) - {'choices'})}")
    if not isinstance(choices, list) or not choices:
        raise UsageError(f"{where}: choices must be a non-empty list")
    if not all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
        raise UsageError(f"{where}: choices must be plain values (text, numbers, true/false, null)")
    plain = [_plain(c) for c in choices]
    if len({norm(c) for c in plain}) != len(plain):
        raise UsageError(f"{where}: choices repeat a value")
    return CategoricalDistribution(plain)


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _plain(value: Any) -> Any:
    """A value as the built-in type Optuna stores (the YAML reader gives subclasses)."""
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def _any_value(d: Distribution) -> Any:
    return d.choices[0] if isinstance(d, CategoricalDistribution) else d.low


def _param(d: Distribution, value: Any) -> Any:
    """A recorded value (text or number) as the distribution's value, or None when it lies outside it."""
    value = parse_value(value) if isinstance(value, str) else value
    if isinstance(d, CategoricalDistribution):
        return next((c for c in d.choices if norm(c) == norm(value)), None)
    if not _is_number(value) or not d.low <= value <= d.high:
        return None
    if isinstance(d, IntDistribution):
        return int(value) if value == int(value) else None
    return float(value)


def _value_text(d: Distribution, value: Any) -> str:
    """The text a hypothesis sets: floats to 4 significant digits (readable, and comparable across attempts)."""
    if isinstance(d, CategoricalDistribution):
        return as_text(value)
    if isinstance(d, IntDistribution):
        return str(int(value))
    short = f"{value:.4g}"
    return short if d.low <= float(short) <= d.high else repr(float(value))


def _perturb(d: Distribution, value: Any, rng: random.Random) -> Any:
    """A nearby value: a Gaussian step of STEP times the range (on a log scale for log ranges); for choices,
    another choice one time in four."""
    if isinstance(d, CategoricalDistribution):
        others = [c for c in d.choices if norm(c) != norm(value)]
        return rng.choice(others) if others and rng.random() < 0.25 else value
    scale = (math.log, math.exp) if d.log else (float, float)
    low, high, x = (scale[0](v) for v in (d.low, d.high, value))
    moved = min(d.high, max(d.low, scale[1](x + rng.gauss(0.0, STEP * (high - low)))))
    return int(round(moved)) if isinstance(d, IntDistribution) else moved
