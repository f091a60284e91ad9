"""Value head with an EWMA target normaliser: the official `ScaledMSEHead` (docs/vpt_format.md §5).

The head predicts in normalised units; targets (returns) are normalised with running statistics
that are updated only when the loss is computed in training mode. The statistics are
non-trainable nn.Parameters (not buffers) because that is how the released state dicts store them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

EWMA_BETA = 0.99999  # per call, not per element (docs/vpt_format.md §5)
EWMA_EPS = 1e-5  # floor of the debiasing term
VAR_FLOOR = 1e-2  # floor of the de-biased variance

#: x -> (mean of x, mean of x^2): the batch statistics of an EWMA step. Data-parallel training
#: passes the global batch's (vpt_rl.distributed.global_moments, which on one rank returns
#: `batch_moments` bit for bit); this module does not know about ranks.
Moments = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def batch_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of x and of x^2 over this batch, in x's dtype (float32, as the official head)."""
    return x.mean(), (x**2).mean()


class EWMANormalizer(nn.Module):
    """running_mean (1,), running_mean_sq (1,), debiasing_term (): all zeros when fresh."""

    def __init__(self) -> None:
        super().__init__()
        self.running_mean = nn.Parameter(torch.zeros(1), requires_grad=False)
        self.running_mean_sq = nn.Parameter(torch.zeros(1), requires_grad=False)
        self.debiasing_term = nn.Parameter(torch.zeros(()), requires_grad=False)

    def mean_var(self) -> tuple[torch.Tensor, torch.Tensor]:
        """De-biased mean and variance (variance floored at 1e-2)."""
        c = self.debiasing_term.clamp_min(EWMA_EPS)
        mean = self.running_mean / c
        var = (self.running_mean_sq / c - mean**2).clamp_min(VAR_FLOOR)
        return mean, var

    @torch.no_grad()
    def update(self, x: torch.Tensor, moments: Moments | None = None) -> None:
        """One EWMA step with the mean of x and of x^2 (detached, float32 as the official head:
        bit-exact with ewma_golden.pt). ``moments`` computes them (default `batch_moments`);
        data-parallel training gives the global batch's, so every rank keeps the same statistics."""
        x = x.detach().to(torch.float32)
        mean, mean_sq = (moments or batch_moments)(x)
        self.running_mean.mul_(EWMA_BETA).add_((1 - EWMA_BETA) * mean)
        self.running_mean_sq.mul_(EWMA_BETA).add_((1 - EWMA_BETA) * mean_sq)
        self.debiasing_term.mul_(EWMA_BETA).add_(1 - EWMA_BETA)

    @torch.no_grad()
    def reset(self) -> None:
        """Back to the fresh state (all zeros)."""
        for p in (self.running_mean, self.running_mean_sq, self.debiasing_term):
            p.zero_()


class ScaledValueHead(nn.Module):
    """`linear` (D -> 1) predicting normalised values, plus its `normalizer` (docs/vpt_format.md §5).

    forward(latent (B,T,D)) -> (B,T) normalised prediction. `denormalize` maps it to raw units;
    `loss(pred_norm, target_raw)` is the MSE in normalised space and, in training mode, first
    updates the statistics with the targets.
    """

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 1)  # default nn.Linear init (docs/vpt_format.md §4)
        self.normalizer = EWMANormalizer()

    def forward(self, latent_btd: torch.Tensor) -> torch.Tensor:
        # float32 even inside an autocast region (values and their losses stay float32)
        with torch.autocast(latent_btd.device.type, enabled=False):
            return self.linear(latent_btd.float()).squeeze(-1)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) / sqrt(var); pure (does not update)."""
        mean, var = self.normalizer.mean_var()
        return (x - mean) / var.sqrt()

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """x * sqrt(var) + mean; pure. With fresh (zero) stats this is 0.1 * x."""
        mean, var = self.normalizer.mean_var()
        return x * var.sqrt() + mean

    def update(self, x: torch.Tensor, moments: Moments | None = None) -> None:
        """EWMA update with raw-unit targets x (beta 0.99999 per call); see `EWMANormalizer.update`."""
        self.normalizer.update(x, moments)

    def loss(
        self, pred_norm: torch.Tensor, target_raw: torch.Tensor, moments: Moments | None = None
    ) -> torch.Tensor:
        """Mean squared error between pred (normalised) and normalize(target); in training mode the
        statistics are updated with the targets first, as the official head does (docs/vpt_format.md §5).
        ``moments``: the update's batch statistics (`EWMANormalizer.update`)."""
        if pred_norm.shape != target_raw.shape:
            raise ValueError(
                f"value loss: prediction shape {tuple(pred_norm.shape)} != target shape {tuple(target_raw.shape)}"
            )
        if self.training:
            self.update(target_raw, moments)
        return F.mse_loss(pred_norm, self.normalize(target_raw))

    def reset_normalizer(self) -> None:
        """Zero the statistics (fresh state)."""
        self.normalizer.reset()
