"""Analytic FLOP count of the VPT policy's forward pass, for model FLOPs utilisation (MFU).

Counted (2 FLOPs per multiply-add): the IMPALA CNN's convolutions and its dense layer, the image
projection, per transformer block the Q/K/V/projection/relative-bias linears, the attention
products QK^T and AV over the M cached + T new keys, and the MLP, then the output trunk and the
heads. Not counted: norms, activations, softmax, pooling (a few % of the total, and not what
hardware peak FLOP/s are quoted for). The count follows the architecture of docs/vpt_format.md §3; it is
checked against torch's own FLOP counter in tests/unit/test_flops.py.

Training costs 3x the forward (the backward computes gradients for inputs and for weights).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vpt_rl.model.action_heads import N_BUTTON_CLASSES, N_CAMERA_CLASSES
from vpt_rl.model.transformer import N_REL_BASIS
from vpt_rl.model.vpt_config import VPTConfig

__all__ = ["ForwardFlops", "forward_flops"]


@dataclass(frozen=True)
class ForwardFlops:
    """FLOPs of one forward pass per frame, by part."""

    cnn: int
    attention: int  # QK^T and AV products
    linear: int  # transformer projections and MLPs, image projection, trunk, heads

    @property
    def total(self) -> int:
        return self.cnn + self.attention + self.linear

    def train_step(self) -> int:
        """Forward + backward per frame (3x the forward)."""
        return 3 * self.total


def _conv(h: int, w: int, c_in: int, c_out: int) -> int:
    return 2 * h * w * c_in * c_out * 9  # 3x3, stride 1, same padding


def forward_flops(config: VPTConfig, t: int = 1) -> ForwardFlops:
    """FLOPs per frame of a forward over chunks of ``t`` frames (the attention's keys: M + t)."""
    h, w = config.img_size
    c_in, cnn = 3, 0
    for c_out in config.cnn_chans:
        cnn += _conv(h, w, c_in, c_out)  # firstconv at the stack's input size
        h, w = math.ceil(h / 2), math.ceil(w / 2)  # max-pool 3, stride 2, pad 1
        cnn += 4 * _conv(h, w, c_out, c_out)  # two residual blocks of two convs
        c_in = c_out
    d, n_heads, m = config.hidsize, config.attention_heads, config.memory_size
    linear = 2 * (c_in * h * w * 256 + 256 * d)  # cnn.dense, img_process.linear
    per_block = 2 * (4 * d * d + d * N_REL_BASIS * n_heads + 2 * d * config.pointwise_ratio * d)
    linear += config.n_recurrence_layers * per_block
    linear += 2 * (d * d + d * (N_BUTTON_CLASSES + N_CAMERA_CLASSES + 2))  # lastlayer, heads, values
    keys = m + t
    attention = config.n_recurrence_layers * 2 * (2 * keys * d)  # QK^T and AV, all heads
    # the relative bias: each head mixes its 10 basis rows for every key
    attention += config.n_recurrence_layers * 2 * n_heads * N_REL_BASIS * keys
    return ForwardFlops(cnn=cnn, attention=attention, linear=linear)
