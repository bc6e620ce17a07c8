"""A CleanRL-shaped training script with another noise profile than the demo: REINFORCE on a 10-armed bandit,
several environments stepped together, one `charts/episodic_return` TensorBoard point per finished episode
logged at `global_step` (so several points share a step), the seed from `--seed`, settings from params.json.

    python episodic_bandit.py [--seed N]      (default: params.json's seed)
"""

import argparse
import json

import numpy as np
from tensorboardX import SummaryWriter

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int)
args = parser.parse_args()
with open("params.json") as handle:
    cfg = json.load(handle)
rng = np.random.default_rng(cfg["seed"] if args.seed is None else args.seed)
arms = np.random.default_rng(7).normal(0.0, 1.0, 10)  # the task is fixed; the seed moves sampling only
logits = np.zeros(10)
writer = SummaryWriter("runs")
global_step, horizon = 0, cfg["episode_length"]
returns = np.zeros(cfg["num_envs"])
for step in range(cfg["total_steps"] // cfg["num_envs"]):
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    actions = rng.choice(10, size=cfg["num_envs"], p=probs)
    rewards = arms[actions] + rng.normal(0.0, cfg["reward_noise"], cfg["num_envs"])
    grad = np.zeros(10)
    for a, r in zip(actions, rewards, strict=True):
        grad -= probs * (r - arms @ probs)
        grad[a] += r - arms @ probs
    logits += cfg["learning_rate"] * grad / cfg["num_envs"]
    returns += rewards
    global_step += cfg["num_envs"]
    if (step + 1) % horizon == 0:
        for episodic_return in returns:
            writer.add_scalar("charts/episodic_return", float(episodic_return), global_step)
        returns[:] = 0.0
    if step % cfg["log_interval"] == 0:
        writer.add_scalar("charts/entropy", float(-(probs * np.log(probs)).sum()), global_step)
writer.close()
print(f"finished {global_step} steps")
