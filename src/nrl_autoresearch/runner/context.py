"""What every part of the runner shares for one open campaign: the campaign itself, its adapters (recipe,
launcher, metric source), its records (ledger, notes, journal), the git workspace, the person's control flags,
the indexes reserved and not yet recorded, and where messages go. Reading only: the decisions are elsewhere."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path

from nrl_autoresearch.core.campaign import CENSUS, Campaign
from nrl_autoresearch.core.journal import Journal
from nrl_autoresearch.core.launcher import Launcher
from nrl_autoresearch.core.ledger import Ledger, Notes, Row, best
from nrl_autoresearch.core.metric import Census, MetricSource, RunOutputs
from nrl_autoresearch.core.names import BASELINE
from nrl_autoresearch.core.progress import Progress
from nrl_autoresearch.core.session import Session
from nrl_autoresearch.core.trial import Trial
from nrl_autoresearch.core.writer import CampaignLock
from nrl_autoresearch.launchers import make_launcher
from nrl_autoresearch.launchers.gpus import GpuPool
from nrl_autoresearch.recipes import recipe_from_dict
from nrl_autoresearch.runner import brev
from nrl_autoresearch.runner.workspace import Workspace

FLAGS = ("stop", "pause")


class ControlFlags:
    """The flags a person sets between experiments ('autoresearch stop', 'pause') and the loop polls: files in
    the campaign's control folder, so another process can set them."""

    def __init__(self, folder: Path):
        self.folder = folder

    def get(self) -> str | None:
        """'stop' or 'pause' when the person asked the loop to halt between experiments."""
        return next((flag for flag in FLAGS if (self.folder / flag).exists()), None)

    def set(self, flag: str | None) -> None:
        """Set ('stop' or 'pause') or clear (None) the flag."""
        for name in FLAGS:
            (self.folder / name).unlink(missing_ok=True)
        if flag:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / flag).write_text(time.strftime("%Y-%m-%dT%H:%M:%S") + "\n")


class Context:
    def __init__(self, campaign: Campaign, *, say: Callable[[str], None] = print, progress: Progress | None = None):
        self.campaign = campaign
        self.say = say
        self.progress = progress
        self.recipe = recipe_from_dict(campaign.recipe)
        self.workspace = Workspace(campaign.repo, campaign.prefix, campaign.worktrees)
        self.ledger = Ledger(campaign.ledger_path)
        self.notes = Notes(self.workspace.git)
        self.journal = Journal(campaign.dir / "journal.jsonl")
        self.gpus = GpuPool(campaign.options.get("gpus_per_experiment", 0))
        self.writer = CampaignLock(campaign.dir, campaign.name)
        self.control = ControlFlags(campaign.dir / "control")
        self.lock = threading.RLock()  # the bookkeeping of the runs in flight (reservations, counts)
        self._in_flight: set[int] = set()
        self._halt_reason: str | None = None
        self._memory: Session | None = None
        if campaign.options.get("brev"):
            brev.load_env_file(campaign.repo)  # never printed; its secrets are redacted like any other

    @cached_property
    def launcher(self) -> Launcher:
        """Built when first used: reading a campaign's state (`status`) needs no backend and its clients."""
        return make_launcher(self.campaign.launcher)

    @cached_property
    def source(self) -> MetricSource:
        """The objective's metric source, built when a run is first measured or watched."""
        return self.recipe.metric_source(self.campaign.objective)

    # -- the records -------------------------------------------------------------------------------
    def rows(self) -> list[Row]:
        return self.ledger.rows(self.campaign.prefix)

    def best_row(self) -> Row | None:
        return best(self.rows(), maximize=self.campaign.objective.maximize)

    def baseline_rows(self) -> list[Row]:
        return [r for r in self.rows() if r.branch == self.workspace.branch(BASELINE)]

    @property
    def memory(self) -> Session:
        """The session files, created at the first checkpoint (reading commands never create them)."""
        if self._memory is None:
            self._memory = Session(self.campaign)
        return self._memory

    # -- runs reserved and not recorded yet ----------------------------------------------------------
    @property
    def in_flight(self) -> frozenset[int]:
        """Indexes reserved and not yet recorded (the stop rules count them)."""
        with self.lock:
            return frozenset(self._in_flight)

    def reserve(self, index: int) -> None:
        with self.lock:
            self._in_flight.add(index)

    def settle(self, indexes: Iterable[int]) -> None:
        """The runs' rows are written (or will never be): they stop counting as in flight."""
        with self.lock:
            self._in_flight -= set(indexes)

    # -- halting -------------------------------------------------------------------------------------
    @property
    def halt_reason(self) -> str | None:
        return self._halt_reason

    def halt(self, reason: str) -> None:
        """End the running experiments (recorded as crashes with this reason) and start no new one."""
        self._halt_reason = reason

    def volume_full(self) -> str | None:
        """On Brev, stop gracefully (no new run) when the volume is nearly full."""
        options = self.campaign.options.get("brev")
        if options and brev.free_gb(options) < brev.STOP_BELOW_GB:
            self.say(f"{options['volume']} has less than {brev.STOP_BELOW_GB:g} GiB free: no new run starts")
            return "pause"
        return None

    # -- where a run's files are -------------------------------------------------------------------
    def log_of(self, trial: Trial) -> Path:
        return self.campaign.run_dir(trial.run) / "run.log"

    def census_path(self, trial: Trial) -> Path:
        return self.campaign.dir / CENSUS / f"{trial.run}.json"

    def outputs(self, trial: Trial, log_path: Path, worktree: Path | None) -> RunOutputs:
        """What a run may read: its log, and the files under its folders that the census at launch did not hold."""
        run_dir = self.campaign.run_dir(trial.run)
        return RunOutputs(log_path, run_dir, worktree or run_dir, Census.load(self.census_path(trial)))

    def job_name(self, index: int) -> str:
        """Unique across campaigns and repositories (cluster schedulers key singletons and lookups on it)."""
        import hashlib

        tag = hashlib.sha1(str(self.campaign.dir.resolve()).encode()).hexdigest()[:6]
        return f"ar-{self.campaign.name}-{tag}-{index:03d}"

    def rel(self, path: Path) -> str:
        """A path as the person reads it: relative to the repository when inside it."""
        try:
            return str(Path(path).resolve().relative_to(self.campaign.repo.resolve()))
        except ValueError:
            return str(path)


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log ('' when there is none)."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
