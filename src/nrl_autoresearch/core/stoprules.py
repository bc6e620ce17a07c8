"""Stop rules as explicit monitors, and the status sentence stated before and after every run.

The skill's rules, exactly: count attempted rows (crashes included); convert a time budget once into an
absolute deadline; enforce a per-experiment limit on every run; stop on a target metric; with no rule, run the
baseline plus three experiments and ask before continuing.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from nrl_autoresearch.core.errors import UsageError

DEFAULT_EXPERIMENTS = 4  # the baseline plus three experiments, then ask
MAX_DURATION_S = 366 * 86400  # a year: beyond it a deadline is a typo, and dates overflow far beyond

_UNITS = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_CLOCK = re.compile(r"^(\d+):(\d{1,2}):(\d{1,2})$")
_TARGET = re.compile(r"^\s*([A-Za-z0-9_./:\-]+)\s*(>=|<=)\s*(-?[0-9.eE+\-]+)\s*$")


def parse_duration(text: str, *, what: str = "duration") -> float:
    """Seconds from '1h30m', '90 min', '1.5h', '2d' or 'HH:MM:SS' (up to a year); anything else is a UsageError."""
    total = _seconds(text.strip().lower())
    if total is not None and total > MAX_DURATION_S:
        raise UsageError(f"bad {what} {text!r}: it is longer than a year; give at most '366d'")
    if total:
        return total
    raise UsageError(
        f"bad {what} {text!r}: write a positive duration with units, such as '45m', '1h30m', '10h', '2d' or '01:30:00'"
    )


def _seconds(raw: str) -> float | None:
    """The duration `raw` spells, or None when it is not one (minutes and seconds of a clock stay below 60)."""
    clock = _CLOCK.match(raw)
    if clock:
        h, m, s = (int(g) for g in clock.groups())
        return float(h * 3600 + m * 60 + s) if m < 60 and s < 60 else None
    parts = _PART.findall(raw)
    if parts and re.fullmatch(r"(?:\s*\d+(?:\.\d+)?\s*[a-z]+\s*)+", raw) and all(u in _UNITS for _, u in parts):
        return sum(float(n) * _UNITS[u] for n, u in parts)
    return None


def format_duration(seconds: float) -> str:
    """Compact remaining time in the skill's style: '6h12m', '45m', '30s', '2d3h'."""
    s = max(0, int(seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, secs = divmod(s, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def exact_duration(seconds: float) -> str:
    """A configured duration exactly as given, every non-zero unit shown: '1m30s', '1h', '2d3h0m5s' -> '2d3h5s'."""
    s = max(0, round(seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, secs = divmod(s, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if n)
    return text or "0s"


@dataclass(frozen=True)
class Target:
    """Stop once the objective reaches a value: 'val:accuracy>=0.8'."""

    metric: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> Target:
        match = _TARGET.match(text)
        if not match:
            raise UsageError(
                f"bad target {text!r}: write METRIC>=VALUE or METRIC<=VALUE, for example 'val:accuracy>=0.8'"
            )
        try:
            value = float(match.group(3))
        except ValueError:
            raise UsageError(f"bad target {text!r}: {match.group(3)!r} is not a number") from None
        return cls(match.group(1), match.group(2), value)

    def reached(self, value: float | None) -> bool:
        if value is None or math.isnan(value):
            return False
        return value >= self.value if self.op == ">=" else value <= self.value

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"


@dataclass(frozen=True)
class StopRules:
    """The campaign's monitors. `deadline` is absolute (epoch seconds), fixed once at campaign start."""

    max_experiments: int | None = None
    budget_s: float | None = None
    deadline: float | None = None
    per_experiment_s: float | None = None
    target: Target | None = None
    implicit: bool = False  # max_experiments came from the default rule: ask before going on
    gpu_hours: float | None = None  # GPU-hour budget; CPU-only runs hold no GPU and never spend it

    @classmethod
    def build(
        cls,
        *,
        now: float,
        max_experiments: int | None = None,
        budget: str | None = None,
        per_experiment: str | None = None,
        target: str | None = None,
        stop: str | None = None,
        metric: str | None = None,
        gpu_hours: float | None = None,
    ) -> StopRules:
        """Combine explicit options and a --stop sentence; fall back to the default rule when nothing bounds the
        campaign. A target must name the objective `metric` and a run must fit in the budget, or nothing could
        ever stop or run."""
        parsed = parse_stop_sentence(stop) if stop is not None else {}
        for key, given in (
            ("max_experiments", max_experiments),
            ("budget", budget),
            ("per_experiment", per_experiment),
            ("target", target),
            ("gpu_hours", None if gpu_hours is None else f"{gpu_hours:g}"),
        ):
            value = None if given is None else str(given)  # as the sentence writes it, so the two compare
            if value is not None and key in parsed and parsed[key] != value:
                raise UsageError(f"--{key.replace('_', '-')} {value!r} contradicts --stop {stop!r}: give it once")
            if value is not None:
                parsed[key] = value
        count = parsed.get("max_experiments")
        if count is not None and int(count) < 1:
            raise UsageError(
                f"bad --max-experiments {count!r}: it counts attempted rows, the baseline included, so it must be at least 1"
            )
        budget_s = parse_duration(parsed["budget"], what="--budget") if parsed.get("budget") is not None else None
        per_s = (
            parse_duration(parsed["per_experiment"], what="--per-experiment")
            if parsed.get("per_experiment") is not None
            else None
        )
        if budget_s is not None and per_s is not None and per_s >= budget_s:
            raise UsageError(
                f"the per-experiment limit {format_duration(per_s)} does not fit in the budget "
                f"{format_duration(budget_s)}: no run could ever start; give a shorter limit or a "
                "longer budget"
            )
        goal = Target.parse(parsed["target"]) if parsed.get("target") is not None else None
        if goal is not None and metric is not None and goal.metric != metric:
            raise UsageError(
                f"bad --target {parsed['target']!r}: it names {goal.metric!r} but the objective is "
                f"{metric!r}; write '{metric}{goal.op}VALUE'"
            )
        gpu_budget = _gpu_budget(parsed.get("gpu_hours"))
        implicit = count is None and budget_s is None and goal is None and gpu_budget is None
        return cls(
            max_experiments=int(count) if count is not None else (DEFAULT_EXPERIMENTS if implicit else None),
            budget_s=budget_s,
            deadline=now + budget_s if budget_s else None,
            per_experiment_s=per_s,
            target=goal,
            implicit=implicit,
            gpu_hours=gpu_budget,
        )

    def extended(self, attempted: int, more: int) -> StopRules:
        """After the person confirms: allow `more` attempts beyond those already made, never fewer than the count
        rule already allows (nor a count rule where there was none)."""
        if self.max_experiments is None:
            return self
        return replace(self, max_experiments=max(self.max_experiments, attempted + more))

    def monitors(self) -> list[str]:
        """The rules stated as the values being monitored."""
        lines = []
        if self.max_experiments is not None:
            suffix = " (default: baseline plus three, then ask)" if self.implicit else ""
            lines.append(f"target_experiment_count = {self.max_experiments}{suffix}")
        if self.deadline is not None:
            lines.append(f"campaign_deadline = {_iso(self.deadline)} ({exact_duration(self.budget_s or 0)} budget)")
        if self.per_experiment_s is not None:
            lines.append(f"per_experiment_timeout = {exact_duration(self.per_experiment_s)}")
        if self.target is not None:
            lines.append(f"target_metric = {self.target}")
        if self.gpu_hours is not None:
            lines.append(f"gpu_hour_budget = {self.gpu_hours:g}")
        return lines

    def to_dict(self) -> dict:
        return {
            "max_experiments": self.max_experiments,
            "budget_s": self.budget_s,
            "deadline": self.deadline,
            "per_experiment_s": self.per_experiment_s,
            "target": str(self.target) if self.target else None,
            "implicit": self.implicit,
            "gpu_hours": self.gpu_hours,
        }

    @classmethod
    def from_dict(cls, data: dict) -> StopRules:
        return cls(
            max_experiments=data.get("max_experiments"),
            budget_s=data.get("budget_s"),
            deadline=data.get("deadline"),
            per_experiment_s=data.get("per_experiment_s"),
            target=Target.parse(data["target"]) if data.get("target") else None,
            implicit=bool(data.get("implicit")),
            gpu_hours=data.get("gpu_hours"),
        )


@dataclass(frozen=True)
class StopStatus:
    """Whether a campaign-level trigger is clearly met, and the sentence that says so."""

    met: bool
    trigger: str | None
    sentence: str


def status(
    rules: StopRules,
    *,
    attempted: int,
    now: float,
    best: float | None = None,
    gpu_hours_used: float = 0.0,
    run_gpu_hours: float | None = None,
) -> StopStatus:
    """The stop sentence: 'stop condition not yet met: 17/24 attempted, 6h12m remaining' or 'stop condition met: ...'."""
    count = _count(rules, attempted)
    met = _trigger(
        rules, attempted=attempted, now=now, best=best, gpu_hours_used=gpu_hours_used, run_gpu_hours=run_gpu_hours
    )
    if met is not None:
        return StopStatus(True, met[0], met[1])
    parts = [count]
    if rules.deadline is not None:
        parts.append(f"{format_duration(rules.deadline - now)} remaining")
    if rules.gpu_hours is not None:
        parts.append(f"{rules.gpu_hours - gpu_hours_used:.3g} of {rules.gpu_hours:g} GPU-hours left")
    if rules.target is not None:
        shown = "none yet" if best is None else f"{best:.6g}"
        parts.append(f"best {shown}, target {rules.target}")
    return StopStatus(False, None, "stop condition not yet met: " + ", ".join(parts))


def room(
    rules: StopRules,
    *,
    attempted: int,
    in_flight: int = 0,
    now: float,
    best: float | None = None,
    gpu_hours_used: float = 0.0,
    run_gpu_hours: float | None = None,
    wanted: int = 1,
) -> int:
    """How many of `wanted` runs may start now (0: none). Runs in flight count as attempted; every run must fit
    before the deadline and in the GPU-hours left. The same triggers as `status`, so both always agree."""
    if (
        _trigger(
            rules,
            attempted=attempted + in_flight,
            now=now,
            best=best,
            gpu_hours_used=gpu_hours_used,
            run_gpu_hours=run_gpu_hours,
        )
        is not None
    ):
        return 0
    if rules.max_experiments is None:
        return wanted
    return min(wanted, rules.max_experiments - attempted - in_flight)


def may_launch(
    rules: StopRules,
    *,
    attempted: int,
    in_flight: int,
    now: float,
    best: float | None = None,
    gpu_hours_used: float = 0.0,
    run_gpu_hours: float | None = None,
) -> bool:
    """Whether one more run may start now."""
    return (
        room(
            rules,
            attempted=attempted,
            in_flight=in_flight,
            now=now,
            best=best,
            gpu_hours_used=gpu_hours_used,
            run_gpu_hours=run_gpu_hours,
        )
        > 0
    )


def _count(rules: StopRules, attempted: int) -> str:
    return (
        f"{attempted} attempted" if rules.max_experiments is None else f"{attempted}/{rules.max_experiments} attempted"
    )


def _trigger(
    rules: StopRules,
    *,
    attempted: int,
    now: float,
    best: float | None,
    gpu_hours_used: float,
    run_gpu_hours: float | None,
) -> tuple[str, str] | None:
    """The first campaign-level trigger met, with its sentence, or None."""
    count = _count(rules, attempted)
    spent = _gpu_spent(rules, gpu_hours_used, run_gpu_hours)
    if spent:
        return "gpu-hours", f"stop condition met: {spent} ({count})"
    if rules.target is not None and rules.target.reached(best):
        return "target", f"stop condition met: target {rules.target} reached ({best:.6g})"
    if rules.max_experiments is not None and attempted >= rules.max_experiments:
        tail = " (default rule: confirm to continue)" if rules.implicit else ""
        return "count", f"stop condition met: {count}{tail}"
    if rules.deadline is not None:
        left = rules.deadline - now
        if left <= 0:
            return "deadline", f"stop condition met: deadline reached ({count})"
        if rules.per_experiment_s is not None and left < rules.per_experiment_s:
            return "deadline", (
                f"stop condition met: {format_duration(left)} remaining, no room for another "
                f"{exact_duration(rules.per_experiment_s)} run ({count})"
            )
    return None


def _gpu_spent(rules: StopRules, used: float, run: float | None) -> str | None:
    """Why the GPU-hour budget allows no further run: spent, or a run's limit cannot fit in what is left."""
    if rules.gpu_hours is None:
        return None
    left = rules.gpu_hours - used
    if left <= 0:
        return f"{used:.3g} of {rules.gpu_hours:g} GPU-hours spent"
    if run is not None and run > left:
        return f"{left:.3g} GPU-hours left, no room for another {run:.3g} GPU-hour run"
    return None


def _gpu_budget(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"bad --gpu-hours {text!r}: give a positive number of GPU-hours, such as 100")
    return value


def run_limit(rules: StopRules, *, now: float) -> float | None:
    """The wall-clock limit for a run starting now: the per-experiment cap, never past the deadline."""
    limits = [x for x in (rules.per_experiment_s, (rules.deadline - now) if rules.deadline else None) if x is not None]
    return max(0.0, min(limits)) if limits else None


def parse_stop_sentence(text: str) -> dict[str, str]:
    """'50 experiments or 10h total, 1h each' -> {'max_experiments': '50', 'budget': '10h', 'per_experiment': '1h'}."""
    found: dict[str, str] = {}
    clauses = [c.strip() for c in re.split(r",|;|\bor\b|\band\b", text) if c.strip()]
    if not clauses:
        raise UsageError(f"bad --stop {text!r}: it is empty; write clauses like '50 experiments or 10h total, 1h each'")
    for clause in clauses:
        key, value = _parse_clause(clause, text)
        if key in found:
            raise UsageError(f"bad --stop {text!r}: it gives {key.replace('_', ' ')} twice")
        found[key] = value
    return found


def _parse_clause(clause: str, whole: str) -> tuple[str, str]:
    low = clause.lower()
    count = re.fullmatch(r"(?:do\s+)?(\d+)\s*(?:experiments?|runs?|exps?|attempts?)", low)
    if count:
        return "max_experiments", count.group(1)
    gpu = re.fullmatch(r"(\d+(?:\.\d+)?)\s*gpu[\s-]*(?:hours?|hrs?|h)", low)
    if gpu:
        return "gpu_hours", gpu.group(1)
    each = re.fullmatch(r"(.+?)\s*(?:each|per experiment|per run|per-experiment|/run|a run|an experiment)", low)
    if each:
        parse_duration(each.group(1), what="per-experiment limit")
        return "per_experiment", each.group(1)
    total = re.fullmatch(r"(.+?)\s*(?:total|overall|in total|budget|of budget)", low)
    if total:
        parse_duration(total.group(1), what="campaign budget")
        return "budget", total.group(1)
    target = re.fullmatch(r"(?:target|until|reach)?\s*(.+)", clause.strip(), flags=re.IGNORECASE)
    if target and _TARGET.match(target.group(1)):
        return "target", target.group(1)
    raise UsageError(
        f"could not read {clause!r} in --stop {whole!r}: write clauses such as '50 experiments', '10h total', "
        "'1h each' or 'val:accuracy>=0.8', joined by 'or' or commas"
    )


def _iso(epoch: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, tz=timezone.utc).astimezone().isoformat(timespec="seconds")
