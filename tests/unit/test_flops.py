"""The analytic FLOP count (for MFU in bench/speed/gpu.py) agrees with torch's own FLOP counter."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from vpt_rl.model.flops import forward_flops
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.vpt_config import VPTConfig


@pytest.mark.parametrize(("preset", "b", "t"), [("tiny", 2, 8), ("tiny", 1, 1), ("1x", 1, 2)])
def test_forward_flops_match_torch_flop_counter(preset, b, t):
    cfg = VPTConfig.preset(preset)
    policy = VPTPolicy(cfg)
    policy.set_fast_paths(fused_attention=False)  # the plain path's matmuls are all counted
    img = torch.zeros(b, t, *cfg.img_shape, dtype=torch.uint8)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        policy(img, torch.zeros(b, t, dtype=torch.bool), policy.initial_state(b))
    counts = {str(op): n / (b * t) for op, n in counter.get_flop_counts()["Global"].items()}
    ours = forward_flops(cfg, t)
    assert ours.cnn == counts["aten.convolution"]  # every conv, exactly
    assert ours.total == pytest.approx(counter.get_total_flops() / (b * t), rel=2e-3)
    assert ours.train_step() == 3 * ours.total


def test_1x_numbers():
    f = forward_flops(VPTConfig.preset("1x"))
    assert f.cnn == 3_680_501_760  # the CNN is 96% of the 1x forward
    assert 3.8e9 < f.total < 3.9e9
