"""Preflight lines that say pass, fail or unknown about the machine a campaign will use: GPUs and their memory,
the uv environment the runs reuse, the model and datasets in the Hugging Face cache, the disk for checkpoints."""

from __future__ import annotations

import pytest

from nrl_autoresearch.runner import gpus
from nrl_autoresearch.runner.gpus import GpuState


def _gpu(index: int, free_gib: float, processes: int = 0, total_gib: float = 80.0) -> GpuState:
    return GpuState(index, total_gib, free_gib, processes)


def test_a_gpu_less_machine_has_no_gpu_to_offer(monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU here either way; NVML is absent on this machine
    assert gpus.states() == [] and gpus.free_gpus() == []
    ok, detail = gpus.local_fit(8, 0.6, gpus.states())
    assert not ok and detail == ("8 needed with 60% of each one's memory free, 0 visible, 0 free: "
                                 "run where the GPUs are, or choose --launcher slurm, k8s or ray")


@pytest.mark.parametrize(("found", "ok", "says"), [
    ([_gpu(0, 79.0), _gpu(1, 70.0)], True, "2 visible, 2 free"),
    ([_gpu(0, 79.0), _gpu(1, 40.0)], False, "GPU 1: 0 processes, 40.0 of 80.0 GiB free): wait for the busy GPUs"),
    ([_gpu(0, 79.0), _gpu(1, 79.0, processes=1)], False, "GPU 1: 1 processes"),
    ([_gpu(0, 79.0)], False, "has too few GPUs; choose another --launcher"),
], ids=["free", "memory-taken", "process-running", "too-few"])
def test_needed_against_free_counts_and_memory(found, ok: bool, says: str) -> None:
    fits, detail = gpus.local_fit(2, 0.6, found)
    assert fits is ok and says in detail
    assert ("wait" in detail or "launcher" in detail) is not ok  # a way out only where it failed


def test_the_share_a_gpu_needs_free_is_the_recipes() -> None:
    half_taken = [_gpu(0, 40.0)]
    assert gpus.free_gpus(0.5, half_taken) == [0] and gpus.free_gpus(0.6, half_taken) == []
