"""GPUs through NVML, degrading to 'no GPU' wherever NVML or a driver is missing."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import lru_cache

from nrl_autoresearch.core.errors import UsageError

# A GPU counts as free when no compute process runs on it and this share of its memory is free, unless the recipe
# says how much it takes (a NeMo-RL recipe's vLLM gpu_memory_utilization: vLLM refuses to start with less).
DEFAULT_FREE_SHARE = 0.8


@lru_cache(maxsize=1)
def _nvml():
    """The initialised pynvml module, or None on machines without NVML (no driver, no GPU, no package)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # NVMLError_LibraryNotFound, ImportError, driver errors: all mean "no GPU here"
        return None


def visible_gpus() -> list[int]:
    """Indices of the GPUs this process may use (CUDA_VISIBLE_DEVICES honoured); empty without NVML."""
    nvml = _nvml()
    if nvml is None:
        return []
    count = nvml.nvmlDeviceGetCount()
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask is None:
        return list(range(count))
    return [int(x) for x in mask.split(",") if x.strip().isdigit() and int(x) < count]


@dataclass(frozen=True)
class GpuState:
    """One visible GPU as NVML sees it now."""

    index: int
    total_gib: float
    free_gib: float
    processes: int  # compute processes running on it

    def usable(self, share: float) -> bool:
        """Free for a run: nobody computes on it and `share` of its memory is free."""
        return self.processes == 0 and self.free_gib >= share * self.total_gib

    def describe(self) -> str:
        return f"GPU {self.index}: {self.processes} processes, {self.free_gib:.1f} of {self.total_gib:.1f} GiB free"


def states() -> list[GpuState]:
    """The visible GPUs with their memory and compute processes; empty without NVML."""
    nvml = _nvml()
    if nvml is None:
        return []
    found = []
    try:
        for i in visible_gpus():
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            found.append(
                GpuState(
                    i, memory.total / 2**30, memory.free / 2**30, len(nvml.nvmlDeviceGetComputeRunningProcesses(handle))
                )
            )
    except nvml.NVMLError:
        return found
    return found


def free_gpus(share: float = DEFAULT_FREE_SHARE, found: list[GpuState] | None = None) -> list[int]:
    """Indices of the visible GPUs a run could take now."""
    return [g.index for g in (states() if found is None else found) if g.usable(share)]


def local_fit(needed: int, share: float, found: list[GpuState]) -> tuple[bool, str]:
    """Whether `needed` GPUs, each with `share` of its memory free, are here now, and what was found; with the
    way out where they are not."""
    free = free_gpus(share, found)
    detail = f"{needed} needed with {share:.0%} of each one's memory free, {len(found)} visible, {len(free)} free"
    if len(free) >= needed:
        return True, detail
    taken = [g.describe() for g in found if not g.usable(share)]
    if taken:
        detail += " (" + "; ".join(taken) + ")"
    if not found:
        return False, detail + ": run where the GPUs are, or choose --launcher slurm, k8s or ray"
    if len(found) < needed:
        return False, detail + ": this machine (or CUDA_VISIBLE_DEVICES) has too few GPUs; choose another --launcher"
    return False, detail + ": wait for the busy GPUs, or choose another --launcher"


def process_memory_gb(pids: set[int]) -> float | None:
    """GPU memory used by these processes across all GPUs, or None without NVML."""
    nvml = _nvml()
    if nvml is None:
        return None
    used = 0
    try:
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            for proc in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if proc.pid in pids and proc.usedGpuMemory:
                    used += proc.usedGpuMemory
    except nvml.NVMLError:
        return None
    return used / 2**30


class GpuPool:
    """Disjoint GPU sets for experiments in flight at once (CUDA_VISIBLE_DEVICES); without GPUs, no mask at all."""

    def __init__(self, per_experiment: int):
        self.per_experiment = per_experiment
        self._free = visible_gpus() if per_experiment else []
        self._held: dict[int, tuple[int, ...]] = {}
        self._lock = threading.Lock()

    def available(self) -> bool:
        return not self.per_experiment or len(self._free) >= self.per_experiment

    def take(self, index: int) -> tuple[int, ...] | None:
        if not self.per_experiment:
            return None
        with self._lock:
            if len(self._free) < self.per_experiment:
                raise UsageError(f"{self.per_experiment} GPUs per experiment requested, {len(self._free)} free")
            taken, self._free = tuple(self._free[: self.per_experiment]), self._free[self.per_experiment :]
            self._held[index] = taken
            return taken

    def give_back(self, index: int) -> None:
        with self._lock:
            self._free += list(self._held.pop(index, ()))
