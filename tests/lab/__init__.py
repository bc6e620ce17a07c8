"""Helpers that give tests real services: Slurm, Ray and headless Chromium."""

from .services import (
    CHROMIUM_FLAGS,
    LabError,
    RayCluster,
    SlurmCluster,
    chromium_binary,
    chromium_run,
    chromium_screenshot,
    start_ray,
    start_slurm,
    start_watchdog,
    stop_ray,
    stop_slurm,
    stop_watchdog,
)

__all__ = [
    "CHROMIUM_FLAGS",
    "LabError",
    "RayCluster",
    "SlurmCluster",
    "chromium_binary",
    "chromium_run",
    "chromium_screenshot",
    "start_ray",
    "start_slurm",
    "start_watchdog",
    "stop_ray",
    "stop_slurm",
    "stop_watchdog",
]
