"""The core is the records and the rules: importing it loads no adapter, no interface and no heavy dependency."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import nrl_autoresearch.core

HEAVY = ("hydra", "omegaconf", "ruamel", "matplotlib", "mcp", "ray")
PROBE = """
import json, pkgutil, importlib, sys
import nrl_autoresearch.core as core
for info in pkgutil.iter_modules(core.__path__):
    importlib.import_module(f"nrl_autoresearch.core.{info.name}")
print(json.dumps(sorted(sys.modules)))
"""


def test_importing_every_core_module_loads_nothing_outside_the_core():
    src = str(Path(nrl_autoresearch.core.__file__).parents[2])
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True)
    loaded = json.loads(proc.stdout)
    heavy = [m for m in loaded if m.split(".")[0] in HEAVY]
    outside = [m for m in loaded if m.startswith("nrl_autoresearch.") and not m.startswith("nrl_autoresearch.core")]
    assert "nrl_autoresearch.core.verdict" in loaded and not heavy and not outside, (heavy, outside)


ADAPTER_PROBE = """
import json, pkgutil, importlib, sys
package = importlib.import_module(sys.argv[1])
for info in pkgutil.iter_modules(package.__path__):
    importlib.import_module(f"{sys.argv[1]}.{info.name}")
print(json.dumps(sorted(sys.modules)))
"""
ENGINE_SIDE = ("runner", "interface", "report", "integrations", "dashboard")


@pytest.mark.parametrize(
    ("adapters", "one_module"),
    [("recipes", "command"), ("launchers", "local"), ("metrics", "text"), ("proposers", "agent")],
)
def test_adapters_depend_on_the_core_alone(adapters: str, one_module: str):
    """A recipe, launcher, metric source or proposer is built on the core's interfaces: none loads the runner or
    the interface (a proposer gets a typed context, not the engine)."""
    src = str(Path(nrl_autoresearch.core.__file__).parents[2])
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    package = f"nrl_autoresearch.{adapters}"
    proc = subprocess.run(
        [sys.executable, "-c", ADAPTER_PROBE, package], capture_output=True, text=True, env=env, check=True
    )
    loaded = json.loads(proc.stdout)
    engine_side = [m for m in loaded if m.startswith("nrl_autoresearch.") and m.split(".")[1] in ENGINE_SIDE]
    assert f"{package}.{one_module}" in loaded and not engine_side, engine_side
