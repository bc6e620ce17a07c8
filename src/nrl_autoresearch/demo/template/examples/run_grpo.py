"""Run GRPO on the toy digit-sum task: `python examples/run_grpo.py --config <recipe.yaml> [overrides...]`.

Same command line as NeMo-RL's examples/run_grpo.py: every argument argparse does not know
is a Hydra-style override (`a.b=v`, `+a.b=v`, `++a.b=v`, `~a.b`).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from toy_config import ConfigError, apply_overrides, load_config
from toy_grpo import grpo_train, setup

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "grpo_toy.yaml")


def parse_args() -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description="Run GRPO training with configuration")
    parser.add_argument("--config", type=str, default=None, help="Path to YAML config file")
    return parser.parse_known_args()


def main() -> int:
    args, overrides = parse_args()
    config_path = args.config or DEFAULT_CONFIG
    try:
        config = load_config(config_path)
        print(f"Loaded configuration from: {config_path}")
        if overrides:
            print(f"Overrides: {overrides}")
            config = apply_overrides(config, overrides)
        run = setup(config)
        # Divergent runs overflow to inf/nan as torch would; the loss reports it, not warnings.
        np.seterr(all="ignore")
        grpo_train(run)
    except (ConfigError, OSError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyError as exc:
        print(f"Error: missing config key {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
