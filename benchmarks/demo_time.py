"""How long does `autoresearch demo` (six baseline runs plus three attempts) take on this machine?

For scale, as many training runs as the demo made are also timed back to back without the tool, in the same
process run:

    python benchmarks/demo_time.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nrl_autoresearch.demo import RECIPE, create_repo


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "nrl_autoresearch", "demo", "--dir", str(Path(tmp) / "demo")],
            check=True,
            capture_output=True,
        )
        demo = time.perf_counter() - start
        runs = len((Path(tmp) / "demo" / "reports/auto_research_results.tsv").read_text().splitlines()) - 1
        bare_repo = create_repo(Path(tmp) / "bare")
        start = time.perf_counter()
        for i in range(runs):
            subprocess.run(
                [
                    sys.executable,
                    "examples/run_grpo.py",
                    "--config",
                    RECIPE,
                    f"checkpointing.checkpoint_dir=ckpt-{i}",
                    f"logger.log_dir=logs-{i}",
                ],
                cwd=bare_repo,
                check=True,
                capture_output=True,
            )
        bare = time.perf_counter() - start
    print(f"autoresearch demo ({runs} rows): {demo:.1f} s")
    print(f"the same {runs} training runs without the tool: {bare:.1f} s  (tool/bare {demo / bare:.1f}x)")


if __name__ == "__main__":
    main()
