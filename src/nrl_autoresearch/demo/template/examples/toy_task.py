"""Digit-sum task: prompts like `3 + 8 + 1 =`, answers checked exactly (a verifiable reward).

Validation prompts use digit *multisets* never seen in training, so a policy only scores
there if it learned how digits add up rather than memorising prompts.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from toy_config import ConfigError

NUM_SYMBOLS = 10  # digits 0-9


def prompt_text(digits: np.ndarray) -> str:
    """Render one prompt row, e.g. `3 + 8 + 1 =`."""
    return " + ".join(str(d) for d in digits) + " ="


def num_answers(num_terms: int) -> int:
    """Size of the answer vocabulary: every sum from 0 to 9 * num_terms."""
    return (NUM_SYMBOLS - 1) * num_terms + 1


def make_datasets(data_cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Train/validation prompts as (n, num_terms) digit arrays with disjoint digit multisets."""
    terms = data_cfg["num_terms"]
    rng = np.random.default_rng(data_cfg["seed"])
    multisets = np.array(list(itertools.combinations_with_replacement(range(NUM_SYMBOLS), terms)))
    num_val = max(1, round(data_cfg["holdout_fraction"] * len(multisets)))
    if num_val >= len(multisets):
        raise ConfigError("data.holdout_fraction leaves no digit combinations for training")
    val_codes = _codes(rng.permutation(multisets)[:num_val])
    train = _sample(rng, terms, data_cfg["train_size"], val_codes, want_val=False)
    val = _sample(rng, terms, data_cfg["val_size"], val_codes, want_val=True)
    return train, val


def rewards(answers: np.ndarray, truth: np.ndarray, near_miss_reward: float) -> np.ndarray:
    """1 for the exact sum, `near_miss_reward` for an off-by-one answer, else 0."""
    exact = answers == truth
    near = np.abs(answers - truth) == 1
    return np.where(exact, 1.0, np.where(near, near_miss_reward, 0.0))


def response_lengths(answers: np.ndarray) -> np.ndarray:
    """Tokens per response: one per answer digit plus end-of-sequence."""
    return np.floor(np.log10(np.maximum(answers, 1))).astype(np.int64) + 2


def _codes(rows: np.ndarray) -> np.ndarray:
    """Order-free id of each row's digit multiset."""
    return np.sort(rows, axis=1) @ NUM_SYMBOLS ** np.arange(rows.shape[1])


def _sample(rng: np.random.Generator, terms: int, size: int, val_codes: np.ndarray, want_val: bool) -> np.ndarray:
    """Rejection-sample uniform digit rows from the wanted side of the multiset split."""
    rows = np.empty((0, terms), dtype=np.int64)
    while len(rows) < size:
        draw = rng.integers(0, NUM_SYMBOLS, size=(4 * size, terms))
        rows = np.concatenate([rows, draw[np.isin(_codes(draw), val_codes) == want_val]])
    return rows[:size]
