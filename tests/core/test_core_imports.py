"""The core is the records and the rules: importing it loads no adapter, no interface and no heavy dependency."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
