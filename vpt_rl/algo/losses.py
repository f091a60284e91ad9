"""Pure loss functions of the two PPG phases. Each returns a dict whose keys are TensorBoard tags;
the scalar to back-propagate is under "train/loss" (policy phase) or "aux/loss" (auxiliary phase).

Why not SB3's PPO.train: it assumes a flat `RolloutBuffer` of single frames and a stateless
policy; here minibatches are whole env rows with a transformer memory state, there is a KL term to
a frozen prior and a second (auxiliary) phase, so only the formulas are shared.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["aux_phase_loss", "ppo_clip_loss", "policy_phase_loss"]


def ppo_clip_loss(
    logprob_bt: Tensor, old_logprob_bt: Tensor, adv_bt: Tensor, clip_eps: float
) -> dict[str, Tensor]:
    """PPO's clipped surrogate (Schulman et al. 2017, eq. 7), as a loss to minimise.

    Also returns the diagnostics: ``train/approx_kl`` is the low-variance estimator
    E[(r - 1) - log r] of KL(pi_old || pi_theta) (Schulman 2020, "Approximating KL divergence";
    CleanRL), ``train/clip_frac`` the fraction of frames whose ratio left [1-eps, 1+eps].
    """
    if logprob_bt.shape != old_logprob_bt.shape or logprob_bt.shape != adv_bt.shape:
        raise ValueError(
            f"ppo_clip_loss: shapes differ: logprob {tuple(logprob_bt.shape)}, "
            f"old_logprob {tuple(old_logprob_bt.shape)}, adv {tuple(adv_bt.shape)}"
        )
    log_ratio = logprob_bt - old_logprob_bt
    ratio = log_ratio.exp()
    surrogate = torch.minimum(ratio * adv_bt, ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv_bt)
    with torch.no_grad():
        approx_kl = ((ratio - 1.0) - log_ratio).mean()
        clip_frac = ((ratio - 1.0).abs() > clip_eps).float().mean()
    return {
        "train/policy_loss": -surrogate.mean(),
        "train/approx_kl": approx_kl,
        "train/clip_frac": clip_frac,
    }


def policy_phase_loss(
    *,
    logprob_bt: Tensor,
    old_logprob_bt: Tensor,
    adv_bt: Tensor,
    value_loss: Tensor,
    entropy_bt: Tensor,
    kl_prior_bt: Tensor | None,
    clip_eps: float,
    vf_coef: float,
    ent_coef: float,
    kl_coef: float,
    train_policy: bool = True,
) -> dict[str, Tensor]:
    """Policy-phase objective (PPG paper, Algorithm 1, L^clip + vf L^value - ent H + rho KL).

    ``value_loss`` is the true value head's mean squared error in normalised units (from
    ``ScaledValueHead.loss``, which owns the target normalisation). ``kl_prior_bt`` is
    KL(pi_prior || pi_theta) per frame (None: no prior, term 0): the direction of the VPT paper's
    RL fine-tuning, which penalises dropping actions the prior takes (mode-covering).
    ``train_policy=False`` (value warm-up) keeps only the value term in "train/loss".
    """
    out = ppo_clip_loss(logprob_bt, old_logprob_bt, adv_bt, clip_eps)
    entropy = entropy_bt.mean()
    kl_prior = kl_prior_bt.mean() if kl_prior_bt is not None else torch.zeros((), device=entropy.device)
    policy_terms = out["train/policy_loss"] - ent_coef * entropy + kl_coef * kl_prior
    # warm-up: the value loss alone, so no gradient (not even a zero one) reaches the policy
    loss = vf_coef * value_loss + policy_terms if train_policy else vf_coef * value_loss
    out.update(
        {
            "train/loss": loss,
            "train/value_loss": value_loss,
            "train/entropy": entropy,
            "train/kl_prior": kl_prior,
        }
    )
    return out


def aux_phase_loss(
    *,
    aux_value_loss: Tensor,
    value_loss: Tensor,
    bc_kl_bt: Tensor,
    beta_clone: float,
    aux_vf_coef: float,
    aux_true_vf_coef: float,
) -> dict[str, Tensor]:
    """Auxiliary-phase objective (PPG paper's joint loss + the value loss of Algorithm 1's aux phase):
    aux value loss on the shared trunk + beta_clone * KL(pi_old || pi_theta), which keeps the
    policy where the policy phase left it, plus the true value head's loss."""
    bc_kl = bc_kl_bt.mean()
    loss = aux_vf_coef * aux_value_loss + beta_clone * bc_kl + aux_true_vf_coef * value_loss
    return {
        "aux/loss": loss,
        "aux/aux_value_loss": aux_value_loss,
        "aux/value_loss": value_loss,
        "aux/bc_kl": bc_kl,
    }
