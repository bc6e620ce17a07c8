"""Number-line policy, GRPO's clipped loss and AdamW, all in numpy.

The synthetic pretrained weights know each digit's value only roughly and guess widely, so
RL starts from a weak but non-zero policy, which is also the reference the KL anchors to.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

DTYPES = {"float32": np.float32, "float64": np.float64}
BASE_DIGIT_NOISE = 0.5  # std of the base model's error on each digit's value
BASE_SPREAD = 2.0  # std (in answer units) of the base model's guesses


def features(digits: np.ndarray, dtype: np.dtype | type) -> np.ndarray:
    """One-hot digit per position plus a constant column (the policy's view of a prompt)."""
    rows, terms = digits.shape
    onehot = np.zeros((rows, terms * 10 + 1), dtype=dtype)
    onehot[np.arange(rows)[:, None], np.arange(terms) * 10 + digits] = 1.0
    onehot[:, -1] = 1.0
    return onehot


def pretrained_weights(model_name: str, num_terms: int, dtype: type) -> np.ndarray:
    """Deterministic "base model" for `model_name`: noisy digit values and a wide spread.

    Layout: the value head (a value per position and digit, then a bias) followed by the
    sharpness head (same shape; starts as a constant inverse spread).
    """
    rng = np.random.default_rng(zlib.crc32(model_name.encode()))
    values = np.tile(np.arange(10.0), num_terms) + BASE_DIGIT_NOISE * rng.standard_normal(num_terms * 10)
    sharpness = np.zeros(num_terms * 10)
    inverse_spread = 1.0 / (np.sqrt(2.0) * BASE_SPREAD)
    return np.concatenate([values, [0.0], sharpness, [inverse_spread]]).astype(dtype)


@dataclass(frozen=True)
class NumberLinePolicy:
    """Discretised Gaussian on the number line: answer k gets logit -(sharpness * (k - value))^2.

    Both heads are linear in the prompt's one-hot digits: each digit at each position adds
    to the predicted sum (the value head) and to how sure the policy is (the sharpness head).
    """

    num_answers: int

    def logits(self, weights: np.ndarray, feats: np.ndarray) -> np.ndarray:
        sharpness, offsets = self._heads(weights, feats)
        return -((sharpness[:, None] * offsets) ** 2)

    def backward(self, weights: np.ndarray, feats: np.ndarray, dlogits: np.ndarray) -> np.ndarray:
        """Gradient w.r.t. the weights given the gradient w.r.t. `logits(weights, feats)`."""
        sharpness, offsets = self._heads(weights, feats)
        dvalue = (dlogits * offsets).sum(axis=1) * 2.0 * sharpness**2
        dsharpness = -(dlogits * offsets**2).sum(axis=1) * 2.0 * sharpness
        return np.concatenate([feats.T @ dvalue, feats.T @ dsharpness])

    def logprobs(self, weights: np.ndarray, feats: np.ndarray, answers: np.ndarray, temperature: float) -> np.ndarray:
        """Training-side log-probs: full softmax at the sampling temperature, as NeMo-RL does."""
        return log_softmax(self.logits(weights, feats) / temperature)[np.arange(len(answers)), answers]

    def _heads(self, weights: np.ndarray, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-prompt sharpness and the offset of every answer from the predicted sum."""
        value_head, sharpness_head = np.split(weights, 2)
        offsets = np.arange(self.num_answers, dtype=weights.dtype) - (feats @ value_head)[:, None]
        return feats @ sharpness_head, offsets


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax, shifted by the row max so large logits stay finite."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def sample(
    logits: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Nucleus-sample one answer per row; returns answers and their generation log-probs.

    The log-probs are those of the truncated, renormalised distribution actually sampled
    from, so top_p < 1 shows up as a generation/training mismatch like vLLM's.
    """
    rows = np.arange(len(logits))
    logp = log_softmax(logits / temperature)
    order = np.argsort(-logp, axis=1, kind="stable")
    sorted_logp = np.take_along_axis(logp, order, axis=1)
    sorted_p = np.exp(sorted_logp)
    kept = np.where(np.cumsum(sorted_p, axis=1) - sorted_p < top_p, sorted_p, 0.0)
    mass = kept.sum(axis=1)
    threshold = rng.random(len(logits)) * mass
    pick = np.minimum((np.cumsum(kept, axis=1) < threshold[:, None]).sum(axis=1), logits.shape[1] - 1)
    return order[rows, pick], sorted_logp[rows, pick] - np.log(mass)


@dataclass
class Batch:
    """One optimizer minibatch of sampled responses."""

    feats: np.ndarray
    answers: np.ndarray
    advantages: np.ndarray
    prev_logprobs: np.ndarray
    ref_logprobs: np.ndarray
    token_weights: np.ndarray  # sums to 1 over the minibatch


def clipped_pg_loss(
    policy: NumberLinePolicy, weights: np.ndarray, batch: Batch, loss_cfg: dict[str, Any], temperature: float
) -> tuple[float, np.ndarray]:
    """PPO-clip objective on advantages plus beta * k3 KL to the reference; loss and gradient."""
    logp_all = log_softmax(policy.logits(weights, batch.feats) / temperature)
    rows = np.arange(len(batch.answers))
    logp = logp_all[rows, batch.answers]
    ratio = np.exp(logp - batch.prev_logprobs)
    clipped = np.clip(ratio, 1.0 - loss_cfg["ratio_clip_min"], 1.0 + loss_cfg["ratio_clip_max"])
    loss1, loss2 = -batch.advantages * ratio, -batch.advantages * clipped
    # k3 estimator, unclamped: far off-policy samples overflow it, which is how high lr diverges.
    log_ref_ratio = batch.ref_logprobs - logp
    ref_ratio = np.exp(log_ref_ratio)
    beta = loss_cfg["reference_policy_kl_penalty"]
    per_sample = np.maximum(loss1, loss2) + beta * (ref_ratio - log_ref_ratio - 1.0)
    # d(-A * ratio)/dlogp = loss1 where the unclipped branch is active, else 0.
    dlogp = (np.where(loss1 >= loss2, loss1, 0.0) + beta * (1.0 - ref_ratio)) * batch.token_weights
    dlogits = -np.exp(logp_all) * dlogp[:, None]
    dlogits[rows, batch.answers] += dlogp
    return float(batch.token_weights @ per_sample), policy.backward(weights, batch.feats, dlogits / temperature)


@dataclass
class AdamW:
    """Decoupled-weight-decay Adam (torch.optim.AdamW semantics)."""

    lr: float
    weight_decay: float
    betas: tuple[float, float]
    eps: float
    step_count: int = 0
    exp_avg: np.ndarray | None = None
    exp_avg_sq: np.ndarray | None = None

    def step(self, params: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """Return the updated parameters; moments and step count live on the optimizer."""
        if self.exp_avg is None or self.exp_avg_sq is None:
            self.exp_avg, self.exp_avg_sq = np.zeros_like(params), np.zeros_like(params)
        beta1, beta2 = self.betas
        self.step_count += 1
        self.exp_avg = beta1 * self.exp_avg + (1 - beta1) * grad
        self.exp_avg_sq = beta2 * self.exp_avg_sq + (1 - beta2) * grad * grad
        m_hat = self.exp_avg / (1 - beta1**self.step_count)
        v_hat = self.exp_avg_sq / (1 - beta2**self.step_count)
        params = params * (1 - self.lr * self.weight_decay)
        return (params - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(params.dtype)


def clip_grad_norm(grad: np.ndarray, max_norm: float) -> tuple[np.ndarray, float]:
    """Scale the gradient to `max_norm` (torch semantics: inf/nan norms poison the update)."""
    norm = float(np.sqrt(np.sum(grad.astype(np.float64) ** 2)))
    return grad * min(1.0, max_norm / (norm + 1e-6)), norm
