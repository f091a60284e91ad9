"""Generalised advantage estimation over `[envs, T]` segments, with truncation handled properly.

Why hand-written rather than SB3's `RolloutBuffer.compute_returns_and_advantage`: SB3 folds
truncation into the reward (`reward += gamma * V(terminal_obs)`) inside its on-policy loop and
keeps data `[T, envs]`; here the segments are `[envs, T]` tensors with separate `terminated` and
`truncated` flags and a separate value of the final observation, and the function is pure so it can
be tested by hand.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from vpt_rl.distributed import Dist, pooled_mean_var

__all__ = ["RunningAdvStd", "gae", "normalize_advantages"]


def gae(
    reward_bt: Tensor,
    value_bt: Tensor,
    terminated_bt: Tensor,
    truncated_bt: Tensor,
    final_value_bt: Tensor,
    next_value_b: Tensor,
    gamma: float,
    lam: float,
) -> dict[str, Tensor]:
    """Advantages and value targets for one segment.

    Step t of row b took the action in observation o_t (value ``value_bt[b,t]`` = V(o_t), raw
    units), received ``reward_bt[b,t]``, and then:

    - ``terminated``: the episode ended for good -> no bootstrap (the future is worth 0);
    - ``truncated`` (time limit, worker restart): the episode was cut -> bootstrap from
      ``final_value_bt[b,t]`` = V(final observation) (Pardo et al. 2018, "Time limits in RL");
    - neither: the episode continues -> next value is ``value_bt[b,t+1]``, or ``next_value_b[b]``
      (the value of the observation after the segment) at the last step.

    In both end cases the GAE recursion does not reach across into the next episode.
    ``final_value_bt`` is read only where ``truncated`` (and not ``terminated``) is True.

    Returns ``{"advantages": (B,T), "returns": (B,T)}`` with returns = advantages + values
    (the lambda-return targets of the value heads; Schulman et al. 2016, GAE).
    """
    b, t = reward_bt.shape
    for name, x in (("value_bt", value_bt), ("terminated_bt", terminated_bt), ("truncated_bt", truncated_bt)):
        if x.shape != (b, t):
            raise ValueError(f"gae: {name} has shape {tuple(x.shape)}, expected {(b, t)}")
    if final_value_bt.shape != (b, t) or next_value_b.shape != (b,):
        raise ValueError(
            f"gae: final_value_bt {tuple(final_value_bt.shape)} must be {(b, t)} and "
            f"next_value_b {tuple(next_value_b.shape)} must be {(b,)}"
        )
    reward_bt = reward_bt.to(torch.float64)  # float64 recursion: long horizons (gamma .999) accumulate error
    value_bt = value_bt.to(torch.float64)
    term = terminated_bt.to(torch.bool)
    trunc = truncated_bt.to(torch.bool) & ~term  # terminated wins when both are set
    ended = term | trunc

    next_values = torch.cat([value_bt[:, 1:], next_value_b.to(torch.float64)[:, None]], dim=1)
    next_values = torch.where(trunc, final_value_bt.to(torch.float64), next_values)
    next_values = torch.where(term, torch.zeros_like(next_values), next_values)
    delta = reward_bt + gamma * next_values - value_bt

    adv = torch.zeros_like(delta)
    carry = torch.zeros(b, dtype=torch.float64, device=delta.device)
    for i in reversed(range(t)):
        carry = delta[:, i] + gamma * lam * carry * (~ended[:, i])
        adv[:, i] = carry
    returns = adv + value_bt
    return {"advantages": adv.to(torch.float32), "returns": returns.to(torch.float32)}


def normalize_advantages(
    adv: Tensor, dist: Dist | None = None, eps: float = 1e-8, running: RunningAdvStd | None = None
) -> Tensor:
    """Mean 0, std 1 over the whole rollout batch, as the reference PPG code (ppo.py) and CleanRL's
    ppg_procgen do (SB3 normalises per minibatch instead; docs/implementation_details.md item 10).
    ``dist`` (default `Dist()`, one process): the data-parallel ranks, whose batches together are
    the global batch; every rank gets its mean and std (docs/implementation_details.md item 34).

    One formula for any number of ranks: each rank's mean and std pooled by `pooled_mean_var`,
    which on one rank returns them bit for bit (the square of a float32 std is exact in float64,
    and so is its square root), so one process computes ``(adv - adv.mean()) / (std + eps)``.

    ``running`` (``ppg.adv_std: running``): the batch's variance is first folded into that running
    average and the advantages are divided by its std instead of the batch's own (item 10b); the
    mean subtracted is still the batch's."""
    std = adv.std(unbiased=False)
    n, mean, var = pooled_mean_var(dist or Dist(), adv.numel(), adv.mean(), std.double() ** 2)
    assert var is not None
    if running is not None:
        var = torch.full_like(var, running.update(float(var), int(n)))
    return (adv - mean.to(adv.dtype)) / (var.sqrt().to(adv.dtype) + eps)


class RunningAdvStd:
    """A running average of the global batch variance of the advantages, weighted by frames.

    Why (docs/implementation_details.md item 10b): per-batch normalisation gives every batch a
    unit-size update, so a batch with no reward, whose advantages are only the value's errors, moves
    the policy as far as one full of rewards; with sparse rewards that is a random walk (measured in
    docs/benchmarks.md "Full difficulty, second pass": the defaults collapse once rewards thin
    out, and without normalisation they do not). Dividing by the std of recent batches keeps the
    step size of dense rewards and shrinks the steps of reward-poor batches.

    A batch of n frames gets weight ``1 - exp(-n / memory_frames)`` (an exponential average whose
    memory is counted in env frames, so more ranks or envs do not change it), and the average is
    de-biased by the total weight so the first batch is its own estimate, as Adam de-biases its
    moments. Identical on every rank (it is fed the global variance); checkpointed."""

    def __init__(self, memory_frames: int) -> None:
        if memory_frames <= 0:
            raise ValueError(f"RunningAdvStd: memory_frames must be > 0, got {memory_frames}")
        self.memory_frames = memory_frames
        self.ewma = 0.0  # weighted sum of variances (not yet de-biased)
        self.weight = 0.0  # total weight, 1 - prod(1 - w_i)

    def update(self, var: float, frames: int) -> float:
        """Fold in one batch's variance over ``frames`` frames; return the de-biased average."""
        w = -math.expm1(-frames / self.memory_frames)
        self.ewma = (1.0 - w) * self.ewma + w * var
        self.weight = (1.0 - w) * self.weight + w
        return self.variance

    @property
    def variance(self) -> float:
        return self.ewma / self.weight if self.weight > 0 else 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"ewma": self.ewma, "weight": self.weight}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.ewma, self.weight = float(d["ewma"]), float(d["weight"])
