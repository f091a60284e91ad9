"""IMPALA CNN image encoder of VPT (docs/vpt_format.md §3.1 and 3.2, steps 1-6).

Module and attribute names mirror the official state-dict keys (`stacks.{i}.firstconv.layer.weight`
...), which is the only reason for the slightly odd names (`n`, `layer`).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from vpt_rl.model.init import DENSE_SCALE, UNIT_SCALE, block_conv_scale, fan_in_init_


class FanInLayer(nn.Module):
    """[norm] -> conv3x3 or linear -> [ReLU]: the official `FanInInitReLULayer`.

    The layer has a bias iff no norm precedes it (docs/vpt_format.md §3.1). Norms: GroupNorm(groups) for
    convs, LayerNorm for linears, both eps 1e-5.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        conv: bool,
        use_norm: bool,
        init_scale: float,
        norm_groups: int = 1,
        use_activation: bool = True,
    ) -> None:
        super().__init__()
        # Registration order = state-dict order: norm.* before layer.* (docs/vpt_format.md §3.1).
        self.norm: nn.Module | None
        self.layer: nn.Conv2d | nn.Linear
        if use_norm:
            self.norm = nn.GroupNorm(norm_groups, in_features) if conv else nn.LayerNorm(in_features)
        else:
            self.norm = None
        if conv:
            self.layer = nn.Conv2d(in_features, out_features, 3, padding=1, bias=not use_norm)
        else:
            self.layer = nn.Linear(in_features, out_features, bias=not use_norm)
        self.use_activation = use_activation
        fan_in_init_(self.layer, init_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm is not None:
            x = self.norm(x)
        x = self.layer(x)
        return F.relu(x) if self.use_activation else x


class CnnBasicBlock(nn.Module):
    """x + conv1(conv0(x)), each conv = GN -> conv3x3 (no bias) -> ReLU; no ReLU after the add."""

    def __init__(self, chans: int, init_scale: float, norm_groups: int) -> None:
        super().__init__()
        self.conv0 = FanInLayer(
            chans, chans, conv=True, use_norm=True, init_scale=init_scale, norm_groups=norm_groups
        )
        self.conv1 = FanInLayer(
            chans, chans, conv=True, use_norm=True, init_scale=init_scale, norm_groups=norm_groups
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(self.conv0(x))


class CnnDownStack(nn.Module):
    """firstconv -> max-pool(3, stride 2, pad 1) -> GroupNorm `n` -> 2 residual blocks."""

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        *,
        first_norm: bool,
        block_scale: float,
        norm_groups: int,
        post_pool_groups: int,
    ) -> None:
        super().__init__()
        # Stack 0 has no norm before its first conv, so that conv has a bias (docs/vpt_format.md §3.1).
        self.firstconv = FanInLayer(
            in_chans,
            out_chans,
            conv=True,
            use_norm=first_norm,
            init_scale=UNIT_SCALE,
            norm_groups=norm_groups,
        )
        self.n = nn.GroupNorm(post_pool_groups, out_chans)
        self.blocks = nn.ModuleList([CnnBasicBlock(out_chans, block_scale, norm_groups) for _ in range(2)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.firstconv(x)
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        x = self.n(x)
        for block in self.blocks:
            x = block(x)
        return x


class ImpalaCNN(nn.Module):
    """Down-stacks, then flatten channel-major (C, H, W) and `dense`: LN -> Linear(., 256) -> ReLU."""

    def __init__(
        self,
        img_hw: tuple[int, int],
        chans: tuple[int, ...],
        *,
        norm_groups: int = 1,
        post_pool_groups: int = 1,
        out_features: int = 256,
    ) -> None:
        super().__init__()
        block_scale = block_conv_scale(len(chans))
        stacks = []
        in_chans, (h, w) = 3, img_hw
        for i, out_chans in enumerate(chans):
            stacks.append(
                CnnDownStack(
                    in_chans,
                    out_chans,
                    first_norm=i > 0,
                    block_scale=block_scale,
                    norm_groups=norm_groups,
                    post_pool_groups=post_pool_groups,
                )
            )
            in_chans, h, w = out_chans, math.ceil(h / 2), math.ceil(w / 2)  # pool k3 s2 p1
        self.stacks = nn.ModuleList(stacks)
        self.flat_features = in_chans * h * w
        self.dense = FanInLayer(
            self.flat_features, out_features, conv=False, use_norm=True, init_scale=DENSE_SCALE
        )

    def forward(self, x_nchw: torch.Tensor) -> torch.Tensor:
        for stack in self.stacks:
            x_nchw = stack(x_nchw)
        return self.dense(x_nchw.flatten(1))  # channel-major flatten (docs/vpt_format.md §3.2 step 4)


class ImgObsProcess(nn.Module):
    """uint8 frames (B, T, H, W, 3) -> (B, T, D): /255, IMPALA CNN, then `linear` LN -> Linear -> ReLU."""

    def __init__(
        self,
        img_hw: tuple[int, int],
        chans: tuple[int, ...],
        hidsize: int,
        *,
        norm_groups: int = 1,
        post_pool_groups: int = 1,
    ) -> None:
        super().__init__()
        self.cnn = ImpalaCNN(img_hw, chans, norm_groups=norm_groups, post_pool_groups=post_pool_groups)
        self.linear = FanInLayer(256, hidsize, conv=False, use_norm=True, init_scale=UNIT_SCALE)

    def forward(self, img_bthwc: torch.Tensor) -> torch.Tensor:
        b, t = img_bthwc.shape[:2]
        # Official ImgPreprocessing divides by 255 (not a multiply by 1/255: last bits differ).
        x = img_bthwc.to(torch.float32) / 255.0
        # A permuted view, not .contiguous(): the official code convolves the same channels-last
        # layout, and a contiguous copy picks other conv kernels (5x further from its last bits).
        x_nchw = x.reshape(b * t, *x.shape[2:]).permute(0, 3, 1, 2)
        feats = self.cnn(x_nchw)
        return self.linear(feats.reshape(b, t, -1))
