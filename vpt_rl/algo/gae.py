"""Generalised advantage estimation over `[envs, T]` segments, with truncation handled properly.

Why hand-written rather than SB3's `RolloutBuffer.compute_returns_and_advantage`: SB3 folds
truncation into the reward (`reward += gamma * V(terminal_obs)`) inside its on-policy loop and
keeps data `[T, envs]`; here the segments are `[envs, T]` tensors with separate `terminated` and
`truncated` flags and a separate value of the final observation, and the function is pure so it can
be tested by hand.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vpt_rl.distributed import Dist, pooled_mean_var

__all__ = ["gae", "normalize_advantages"]


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


def normalize_advantages(adv: Tensor, dist: Dist | None = None, eps: float = 1e-8) -> Tensor:
    """Mean 0, std 1 over the whole rollout batch, as the reference PPG code (ppo.py) and CleanRL's
    ppg_procgen do (SB3 normalises per minibatch instead; docs/implementation_details.md item 10).
    ``dist`` (default `Dist()`, one process): the data-parallel ranks, whose batches together are
    the global batch; every rank gets its mean and std (docs/implementation_details.md item 34).

    One formula for any number of ranks: each rank's mean and std pooled by `pooled_mean_var`,
    which on one rank returns them bit for bit (the square of a float32 std is exact in float64,
    and so is its square root), so one process computes ``(adv - adv.mean()) / (std + eps)``."""
    std = adv.std(unbiased=False)
    _, mean, var = pooled_mean_var(dist or Dist(), adv.numel(), adv.mean(), std.double() ** 2)
    assert var is not None
    return (adv - mean.to(adv.dtype)) / (var.sqrt().to(adv.dtype) + eps)
