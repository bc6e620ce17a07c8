"""`nemo-rl:METRIC_NAME`: the metric NeMo-RL itself ranks checkpoints by, read where NeMo-RL writes it.

In order, each reading saying which source it used: the TensorBoard tag of `checkpointing.metric_name`
(`val:accuracy` -> `validation/accuracy`, every point); the `val_data_step*.jsonl` dumps (mean reward);
the console blocks (GRPO `• Accuracy:`, SFT `• Validation loss:`, DPO's `default` set); `step_N/training_info.json`.
The run's real log directory comes from its `📊 Using log directory:` line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from nrl_autoresearch.core.errors import UsageError
from nrl_autoresearch.core.metric import MetricSource, Point, Reading, RunOutputs
from nrl_autoresearch.metrics.tensorboard import max_over_tags, tag_points
from nrl_autoresearch.metrics.text import NUMBER

LOG_DIR = re.compile(r"📊 Using log directory:\s*(\S.*?)\s*$", re.MULTILINE)
STEP = re.compile(r"=+ Step (\d+)/(\d+) =+")
MEMORY_TAG = re.compile(r"ray/node\.\d+\.gpu\.\d+\.mem_gb")
_VAL_STEP = re.compile(r"val_data_step(\d+)\.jsonl$")
_INFO_STEP = re.compile(r"step_(\d+)$")
ENDINGS = (
    ("Max number of steps has been reached", "reached max_num_steps"),
    ("Timeout has been reached", "stopped by checkpoint_must_save_by (timeout)"),
    ("reached the early-stop threshold", "stopped at the validation early-stop threshold"),
)
FAILURES = (
    (re.compile(r"CUDA out of memory|torch\.OutOfMemoryError|OutOfMemoryError", re.I), "CUDA out of memory"),
    (re.compile(r"• Loss: [-+]?nan|loss[^\n]{0,20}\bnan\b", re.I), "NaN loss (diverged)"),
)
# console fallbacks per metric: GRPO and distillation accuracy, SFT and DPO validation loss
_CONSOLE = {
    "val:accuracy": re.compile(rf"📊 Validation Results:\s*\n\s*• Accuracy: {NUMBER}"),
    "val:val_loss": re.compile(rf"📊 Validation Results:\s*\n\s*• Validation loss: {NUMBER}"),
    "val:validation-default_loss": re.compile(
        rf"📊 Validation Results for `default` set:\s*\n\s*• Validation loss: {NUMBER}"
    ),
}


# Per-dataset validation metrics of DPO and RM (`validation-<dataset>_<metric>`), longest first for suffix matching.
_PER_DATASET_METRICS = sorted(
    (
        "loss",
        "sft_loss",
        "preference_loss",
        "accuracy",
        "rewards_chosen_mean",
        "rewards_rejected_mean",
        "num_valid_samples",
        "global_valid_seqs",
        "global_valid_toks",
    ),
    key=len,
    reverse=True,
)


def metric_tag(metric_name: str) -> str:
    """`val:X` -> `validation/X`, `train:X` -> `train/X`, DPO/RM `val:validation-<ds>_<m>` -> `validation-<ds>/<m>`."""
    prefix, sep, name = metric_name.partition(":")
    if not sep or not name or prefix not in ("val", "train"):
        raise UsageError(
            f"checkpointing.metric_name {metric_name!r} is not 'val:<metric>' or 'train:<metric>'; "
            "fix it in the recipe or override it"
        )
    if prefix == "val" and name.startswith("validation-"):
        suffix = next((m for m in _PER_DATASET_METRICS if name.endswith(f"_{m}")), None)
        dataset, metric = (name[: -len(suffix) - 1], suffix) if suffix else name.split("_", 1)
        return f"{dataset}/{metric}"
    return f"{'validation' if prefix == 'val' else 'train'}/{name}"


def log_dirs(run: RunOutputs) -> list[Path]:
    """The `exp_NNN` folders the run announced, relative paths taken from its working directory."""
    found = []
    for match in LOG_DIR.finditer(run.log_text()):
        path = Path(match.group(1))
        found.append(path if path.is_absolute() else run.workdir / path)
    return found


class NemoRL(MetricSource):
    kind = "nemo-rl"

    def __init__(self, arg: str):
        super().__init__(arg)
        self.tag = metric_tag(arg)

    def read(self, run: RunOutputs) -> Reading | None:
        for reader in (self._tensorboard, self._val_dumps, self._console, self._training_info):
            reading = reader(run)
            if reading is not None and reading.points:
                return reading
        return None

    def memory_gb(self, run: RunOutputs) -> float | None:
        """Peak of every `ray/node.*.gpu.*.mem_gb` sample (NeMo-RL's GPU monitor)."""
        return max_over_tags(run, MEMORY_TAG)

    def failure(self, run: RunOutputs) -> str | None:
        text = run.log_text()
        return next((why for pattern, why in FAILURES if pattern.search(text)), None)

    def progress(self, run: RunOutputs) -> tuple[int, int] | None:
        """The latest `========================= Step i/N =========================` header."""
        steps = STEP.findall(run.log_tail())
        return (int(steps[-1][0]), int(steps[-1][1])) if steps else None

    def ending(self, run: RunOutputs) -> str | None:
        text = run.log_text()
        return next((why for marker, why in ENDINGS if marker in text), None)

    # -- the sources, in order ----------------------------------------------------------------------
    def _tensorboard(self, run: RunOutputs) -> Reading | None:
        """The tag in the `exp_NNN` folders the run announced (or anywhere the run wrote, when it announced none)."""
        announced = [d for d in log_dirs(run) if d.is_dir()]
        scopes = [RunOutputs(run.log_path, d, d, run.before) for d in announced] or [run]
        points: list[Point] = []
        used: list[str] = []
        for scope in scopes:
            found, files = tag_points(scope, self.tag)
            points, used = points + found, used + files
        return Reading(points, f"tensorboard tag {self.tag} in {', '.join(used)}") if points else None

    def _val_dumps(self, run: RunOutputs) -> Reading | None:
        if self.arg not in ("val:accuracy", "val:reward"):
            return None
        points: list[Point] = []
        used: list[str] = []
        for path in run.files(_VAL_STEP):
            text = run.new_text(path)
            complete = text[: text.rfind("\n") + 1]  # a line still being written (a live run) is read next time
            rewards = [json.loads(line)["rewards"][0] for line in complete.splitlines() if line.strip()]
            if rewards:
                step = _VAL_STEP.search(path.name)
                assert step is not None  # run.files() matched it
                points.append(Point(int(step.group(1)), sum(rewards) / len(rewards)))
                used.append(path.name)
        points.sort(key=lambda p: p.step)
        return (
            Reading(points, f"mean reward of {len(used)} val_data_step*.jsonl files (no TensorBoard tag {self.tag})")
            if points
            else None
        )

    def _console(self, run: RunOutputs) -> Reading | None:
        pattern = _CONSOLE.get(self.arg)
        if pattern is None:
            return None
        points = [Point(i, float(m.group(1))) for i, m in enumerate(pattern.finditer(run.log_text()), 1)]
        return (
            Reading(points, f"console validation blocks in {run.log_path} (4 decimals; no TensorBoard tag {self.tag})")
            if points
            else None
        )

    def _training_info(self, run: RunOutputs) -> Reading | None:
        points: list[Point] = []
        for path in run.files(re.compile(r"^training_info\.json$")):
            step = _INFO_STEP.search(path.parent.name)
            info = json.loads(path.read_text())
            if step and self.arg in info:
                value = info[self.arg]
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    return Reading(points, str(path), f"{self.arg} is {json.dumps(value)[:40]} in {path}, not a number")
                points.append(Point(int(step.group(1)), float(value)))
        points.sort(key=lambda p: p.step)
        return Reading(points, "checkpoint training_info.json files") if points else None
