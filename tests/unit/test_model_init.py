"""Fresh initialisation follows docs/vpt_format.md §4: fan-in rows rescaled to fixed norms, zero biases,
b_nd ~ N(0, 0.2^2), unit norms, default-init heads and a zero normaliser."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vpt_rl.model.init import block_conv_scale, mlp1_scale
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.vpt_config import VPTConfig


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(123)
    return VPTPolicy(VPTConfig.preset("tiny"))


def _row_norms(w):
    return w.detach().flatten(1).norm(dim=1)


def test_scale_constants():
    assert block_conv_scale(3) == pytest.approx((math.sqrt(3) / math.sqrt(2)) ** 0.5)
    assert block_conv_scale(3) == pytest.approx(1.1067, abs=1e-4)
    assert mlp1_scale(4) == pytest.approx(0.3536, abs=1e-4) and mlp1_scale(2) == pytest.approx(0.5)


def test_fan_in_row_norms(policy):
    net = policy.net
    cnn = net.img_process.cnn
    attn = net.recurrent_layer.blocks[1].r.orc_block
    s_blk = mlp1_scale(2)
    expected = {
        "firstconv": (cnn.stacks[0].firstconv.layer, 1.0),
        "stack2 firstconv": (cnn.stacks[2].firstconv.layer, 1.0),
        "block conv": (cnn.stacks[1].blocks[1].conv0.layer, block_conv_scale(3)),
        "dense": (cnn.dense.layer, 1.4),
        "img linear": (net.img_process.linear.layer, 1.0),
        "mlp0": (net.recurrent_layer.blocks[0].mlp0.layer, 1.0),
        "mlp1": (net.recurrent_layer.blocks[0].mlp1.layer, s_blk),
        "q": (attn.q_layer, 0.1),
        "k": (attn.k_layer, 0.2),
        "v": (attn.v_layer, math.sqrt(s_blk)),
        "proj": (attn.proj_layer, math.sqrt(s_blk)),
        "r": (attn.r_layer, 0.1),
        "lastlayer": (net.lastlayer.layer, 1.0),
    }
    for name, (layer, scale) in expected.items():
        torch.testing.assert_close(
            _row_norms(layer.weight), torch.full((layer.weight.shape[0],), scale), msg=name
        )
        if layer.bias is not None:
            assert layer.bias.abs().max() == 0, f"{name} bias"


def test_b_nd_norms_heads_normaliser(policy):
    b_nd = torch.cat([blk.r.orc_block.b_nd.detach().flatten() for blk in policy.net.recurrent_layer.blocks])
    assert 0.14 < b_nd.std().item() < 0.26 and abs(b_nd.mean().item()) < 0.06
    for name, m in policy.named_modules():
        if isinstance(m, (nn.LayerNorm, nn.GroupNorm)):
            assert (m.weight == 1).all() and (m.bias == 0).all(), name
    # Heads keep nn.Linear's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), non-zero bias.
    bound = 1 / math.sqrt(64)
    for head in (
        policy.pi_head["buttons"].linear_layer,
        policy.pi_head["camera"].linear_layer,
        policy.value_head.linear,
    ):
        assert (
            head.weight.abs().max() <= bound and head.bias.abs().max() <= bound and head.bias.abs().max() > 0
        )
    assert _row_norms(policy.pi_head["buttons"].linear_layer.weight).std() > 0.01  # not rescaled
    for p in list(policy.value_head.normalizer.parameters()) + list(
        policy.aux_value_head.normalizer.parameters()
    ):
        assert p.abs().sum() == 0
