"""Reading a finished run for symptoms, the way the exploration guide turns symptoms into the next area to try.

`diagnose` looks at the run's log and its TensorBoard scalars: NaN or exploding loss, out of memory, idle GPUs,
good train reward but weak validation, zero-variance or saturated rewards, truncated completions. Each symptom
names the exploration area it points to; the catalog proposer tries those areas first. `trivial_crash` says
whether a crash looks like a small mistake in the change itself (worth one fix and a rerun) rather than a
poor idea.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass

from nrl_autoresearch.core.metric import Point, RunOutputs
from nrl_autoresearch.metrics.tensorboard import run_scalars

AREAS = {
    "stability": "batch/sequence/precision",
    "memory": "batch/sequence/precision",
    "throughput": "synchronous vs asynchronous",
    "generalisation": "prompt and rollout format",
    "reward": "reward shaping/clipping/scaling",
    "truncation": "prompt and rollout format",
}
_TRIVIAL = re.compile(
    r"SyntaxError|IndentationError|ModuleNotFoundError|ImportError|NameError|AttributeError: module|"
    r"Could not override|Key '[^']+' is not in struct|KeyError|TypeError: .*unexpected keyword|FileNotFoundError",
)
_OOM = re.compile(r"CUDA out of memory|OutOfMemoryError|Killed process .* out of memory", re.I)
_NAN_LOSS = re.compile(r"(?:• Loss|loss)[^\n]{0,20}\b(?:nan|inf)\b", re.I)
_LENGTH = re.compile(r"• Mean Generation Length: ([0-9.]+)")


@dataclass(frozen=True)
class Symptom:
    name: str
    area: str
    detail: str


def diagnose(run: RunOutputs, *, max_new_tokens: int | None = None) -> list[Symptom]:
    """Every symptom the run shows, most urgent first."""
    text = run.log_text()
    scalars = _scalars(run)
    found = []
    if nan_loss(text) or _exploding(scalars.get("train/loss", [])):
        found.append(
            Symptom(
                "stability",
                AREAS["stability"],
                "NaN or exploding loss: look at precision, optimizer settings (learning rate), sequence length, backend",
            )
        )
    if _OOM.search(text):
        found.append(
            Symptom(
                "memory",
                AREAS["memory"],
                "out of memory: first reduce the most recent memory-expanding change (batch, sequence, generations)",
            )
        )
    util = [
        p.value
        for tag, points in scalars.items()
        if re.fullmatch(r"ray/node\.\d+\.gpu\.\d+\.util", tag)
        for p in points
    ]
    if util and statistics.fmean(util) < 30:
        found.append(
            Symptom(
                "throughput",
                AREAS["throughput"],
                f"GPU utilisation {statistics.fmean(util):.0f}%: batching, colocation or asynchronous rollouts",
            )
        )
    train, val = _last(scalars.get("train/reward")), _last(scalars.get("validation/accuracy"))
    if train is not None and val is not None and train - val > 0.25:
        found.append(
            Symptom(
                "generalisation",
                AREAS["generalisation"],
                f"train reward {train:.3f} but validation {val:.3f}: prompt mismatch, reward or validation data",
            )
        )
    rewards = [p.value for p in scalars.get("train/reward", [])]
    if len(rewards) >= 3 and (max(rewards) - min(rewards) < 1e-9 or min(rewards) >= 0.99 or max(rewards) <= 0.01):
        found.append(
            Symptom(
                "reward",
                AREAS["reward"],
                "zero-variance or saturated rewards: the group has no signal; reshape, rescale or change the data mix",
            )
        )
    lengths = [float(x) for x in _LENGTH.findall(text)]
    if max_new_tokens and lengths and statistics.fmean(lengths[-3:]) >= 0.95 * max_new_tokens:
        found.append(
            Symptom(
                "truncation",
                AREAS["truncation"],
                f"completions reach max_new_tokens ({max_new_tokens}): raise it with the sequence length, or ask for shorter answers",
            )
        )
    return found


_ERROR_LINE = re.compile(r"^\s*(\w+(?:\.\w+)*(?:Error|Exception)\b.*|error: .*|Killed)$", re.I)
ERROR_CHARS = 200


def error_line(tail: list[str]) -> str | None:
    """The last of a log's lines that states an error (`ValueError: could not convert 'abc'`), shortened."""
    return next((line.strip()[:ERROR_CHARS] for line in reversed(tail) if _ERROR_LINE.match(line)), None)


def nan_loss(text: str) -> bool:
    """A NaN or infinite loss printed in the log (NeMo-RL's console or a plain `loss nan`)."""
    return bool(_NAN_LOSS.search(text))


def loss_explodes(run: RunOutputs) -> bool:
    """The TensorBoard loss is not finite or has grown a hundredfold over its early median."""
    return _exploding(_scalars(run).get("train/loss", []))


def trivial_crash(log_tail: str) -> bool:
    """A syntax error, a missing import, a bad key: the change's own small mistake, worth a fix and a rerun."""
    return bool(_TRIVIAL.search(log_tail))


def likely_cause(reason: str, tail: list[str], source: str) -> tuple[str, str]:
    """For a crash reason and the log's last lines: the probable cause in words, and what to do about it."""
    error = error_line(tail)
    if "timeout" in reason:
        return "the run reached its wall-clock limit", "give it more time (--per-experiment) or make it shorter"
    if _OOM.search(" ".join(tail)) or "out of memory" in reason:
        return "it ran out of memory", "lower the batch size, the sequence length or the number of generations"
    if "not a number" in reason or "not a finite number" in reason:
        return "the metric it wrote is not a finite number", "make the recipe write a number (NaN means it diverged)"
    if error:
        return f"the command failed: {error}", "fix the command, the recipe or its environment"
    if "exit code" in reason or "killed" in reason:
        return f"the command ended with {reason.split('crash: ', 1)[-1]}", "run the command by hand to see why"
    if "found" in reason:
        return (f"the run printed nothing that {source} reads", f"check --metric-source ({source}) against the log")
    return reason, "read the log"


def _scalars(run: RunOutputs) -> dict[str, list[Point]]:
    found: dict[str, list[Point]] = {}
    for _, scalars in run_scalars(run):
        for tag, points in scalars.items():
            found.setdefault(tag, []).extend(points)
    return found


def _exploding(points: list[Point]) -> bool:
    values = [p.value for p in points]
    if any(not math.isfinite(v) for v in values):
        return True
    return len(values) >= 4 and abs(values[-1]) > 100 * max(
        1e-9, statistics.median(abs(v) for v in values[: len(values) // 2])
    )


def _last(points: list[Point] | None) -> float | None:
    return points[-1].value if points else None
