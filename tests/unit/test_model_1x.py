"""The 1x preset builds on CPU, takes detfill weights with a strict load and runs a few 128x128
frames with finite outputs of the documented shapes.

detfill.py needs ~50 s for the 71 M values of 1x (int64 emulation of uint32 hashing), so this file
computes the same values with numpy's native uint32 arithmetic (~2 s) and first checks that port
bit for bit against detfill.py on every tiny key and on several 1x keys.
"""

from __future__ import annotations

import importlib.util
import json
import math
import zlib

import numpy as np
import pytest
import torch

from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.vpt_config import VPTConfig


def _load_detfill(reference_dir):
    spec = importlib.util.spec_from_file_location("detfill", reference_dir / "detfill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _hash_u32(seed: int, n: int) -> np.ndarray:
    """detfill._hash_u32(seed, n, stream=0) in native uint32 (multiplication wraps mod 2**32)."""
    s = np.uint32(seed)
    x = np.arange(n, dtype=np.uint32) * np.uint32(0x9E3779B1) + s
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x85EBCA6B)
    x ^= x >> np.uint32(13)
    x *= np.uint32(0xC2B2AE35)
    x ^= x >> np.uint32(16)
    x += s
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x2C1B3C6D)
    x ^= x >> np.uint32(12)
    x *= np.uint32(0x297A2D39)
    x ^= x >> np.uint32(15)
    return x


def _fast_tensor(detfill, key: str, shape) -> torch.Tensor:
    """Same values as detfill.det_tensor; the fast path covers the big weight matrices and b_nd."""
    parts = key.split(".")
    is_matrix = parts[-1] == "weight" and len(shape) >= 2
    if parts[-2] == "normalizer" or not (is_matrix or parts[-1] == "b_nd"):
        return detfill.det_tensor(key, shape)
    u = (_hash_u32(zlib.crc32(key.encode("utf-8")), math.prod(shape)) >> np.uint32(8)).astype(np.float32)
    r = (u * np.float32(1.0 / 16777216.0) * np.float32(2.0) - np.float32(1.0)) * np.float32(math.sqrt(3.0))
    if is_matrix:
        gain = 3.0 if parts[-2] in ("q_layer", "k_layer") else 1.0
        r = r * np.float32(gain / math.sqrt(math.prod(shape[1:])))
    else:
        r = r * np.float32(0.5)
    return torch.from_numpy(r.reshape(tuple(shape)))


def _shapes(reference_dir, name):
    manifest = json.loads((reference_dir / f"manifest_{name}.json").read_text())
    return {e["key"]: tuple(e["shape"]) for e in manifest["keys"]}


def test_fast_fill_is_bit_identical_to_detfill(reference_dir):
    detfill = _load_detfill(reference_dir)
    for key, shape in _shapes(reference_dir, "tiny").items():
        assert torch.equal(_fast_tensor(detfill, key, shape), detfill.det_tensor(key, shape)), key
    shapes_1x = _shapes(reference_dir, "1x")
    for key in (
        "net.img_process.cnn.stacks.1.blocks.0.conv0.layer.weight",
        "net.recurrent_layer.blocks.3.r.orc_block.k_layer.weight",
        "net.recurrent_layer.blocks.0.r.orc_block.b_nd",
        "pi_head.camera.linear_layer.weight",
    ):
        assert torch.equal(
            _fast_tensor(detfill, key, shapes_1x[key]), detfill.det_tensor(key, shapes_1x[key])
        ), key


@pytest.fixture(scope="module")
def policy_1x(reference_dir):
    detfill = _load_detfill(reference_dir)
    shapes = detfill.add_aux_value_head_shapes(_shapes(reference_dir, "1x"))
    policy = VPTPolicy(VPTConfig.preset("1x"), aux_value_head=True)  # built on CPU, fresh init
    policy.load_state_dict({k: _fast_tensor(detfill, k, s) for k, s in shapes.items()}, strict=True)
    return policy.eval()


def test_1x_forward_shapes_and_finite(policy_1x):
    gen = torch.Generator().manual_seed(0)
    img = torch.randint(0, 256, (1, 2, 128, 128, 3), dtype=torch.uint8, generator=gen)
    first = torch.tensor([[True, False]])
    state = policy_1x.initial_state(1)
    with torch.no_grad():
        out, new_state = policy_1x(img, first, state)
        action, logprob, value, _ = policy_1x.act(img[:, 1:], torch.tensor([[False]]), new_state)
    assert out.logprobs["buttons"].shape == (1, 2, 8641) and out.logprobs["camera"].shape == (1, 2, 121)
    assert out.vpred.shape == out.aux_vpred.shape == (1, 2) and out.latent.shape == (1, 2, 1024)
    for lp in out.logprobs.values():
        assert torch.isfinite(lp).all()
        torch.testing.assert_close(lp.exp().sum(-1), torch.ones(1, 2))
    assert torch.isfinite(out.vpred).all() and torch.isfinite(out.aux_vpred).all()
    assert len(new_state) == 4
    for mask, k, v in new_state:
        assert mask.shape == (1, 128) and mask.sum().item() == 2
        assert k.shape == v.shape == (1, 128, 1024) and torch.isfinite(k).all()
    assert action["buttons"].shape == action["camera"].shape == (1, 1)
    assert torch.isfinite(logprob).all() and torch.isfinite(value).all()
