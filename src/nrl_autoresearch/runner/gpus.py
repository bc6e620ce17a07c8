"""GPUs through NVML, degrading to 'no GPU' wherever NVML or a driver is missing."""

from __future__ import annotations

import os
import threading
from functools import lru_cache

from nrl_autoresearch.core.errors import UsageError


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


def busy_gpus() -> set[int]:
    """GPUs with compute processes on them (for 'are the GPUs free?')."""
    nvml = _nvml()
    if nvml is None:
        return set()
    busy = set()
    for i in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(i)
        if nvml.nvmlDeviceGetComputeRunningProcesses(handle):
            busy.add(i)
    return busy


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
            taken, self._free = tuple(self._free[:self.per_experiment]), self._free[self.per_experiment:]
            self._held[index] = taken
            return taken

    def give_back(self, index: int) -> None:
        with self._lock:
            self._free += list(self._held.pop(index, ()))
