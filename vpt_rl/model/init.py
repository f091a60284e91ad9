"""Fresh initialisation of VPT layers (docs/vpt_format.md §4).

Only newly created modules see these values (a fresh aux value head, or a policy trained from
scratch): every released checkpoint overwrites them. They follow the official scheme so that a
fresh network has the same activation scales as the original one.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# docs/vpt_format.md §4: scale for the IMPALA firstconv, projection layers, mlp0 and lastlayer.
UNIT_SCALE = 1.0
DENSE_SCALE = 1.4  # cnn.dense
Q_SCALE = 0.1
K_SCALE = 0.2
R_SCALE = 0.1  # r_layer, the per-query mixing of the relative-position table
B_ND_STD = 0.2  # b_nd ~ N(0, 0.2^2)


def block_conv_scale(n_stacks: int, n_blocks: int = 2) -> float:
    """Scale of each IMPALA residual-block conv: sqrt(n_stacks) per stack, split over
    sqrt(n_blocks) blocks, square-rooted per conv (docs/vpt_format.md §4; (sqrt(3)/sqrt(2))^0.5 for 3 stacks)."""
    return math.sqrt(math.sqrt(n_stacks) / math.sqrt(n_blocks))


def mlp1_scale(n_layers: int) -> float:
    """s_blk = L^-1/2 * 2^-1/2: the scale of each block's second MLP layer (docs/vpt_format.md §4)."""
    return n_layers**-0.5 * 2**-0.5


@torch.no_grad()
def rescale_rows_(weight: torch.Tensor, scale: float) -> torch.Tensor:
    """Rescale every output row of a Linear/Conv weight (norm over all input dims) to L2 norm
    `scale`, in place. Works on the meta device (no values, only shapes)."""
    norms = weight.flatten(1).norm(dim=1).clamp_min(1e-12)
    weight.mul_((scale / norms).reshape(-1, *([1] * (weight.dim() - 1))))
    return weight


@torch.no_grad()
def fan_in_init_(layer: nn.Module, scale: float) -> nn.Module:
    """PyTorch default init (already done by the constructor), rows rescaled to `scale`,
    bias 0 (docs/vpt_format.md §4)."""
    weight = layer.weight
    assert isinstance(weight, torch.Tensor), f"{type(layer).__name__} has no weight tensor"
    rescale_rows_(weight, scale)
    bias = getattr(layer, "bias", None)
    if bias is not None:
        bias.zero_()
    return layer
