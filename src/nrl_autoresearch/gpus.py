"""GPUs through NVML, degrading to 'no GPU' wherever NVML or a driver is missing."""

from __future__ import annotations

import os
from functools import lru_cache


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
