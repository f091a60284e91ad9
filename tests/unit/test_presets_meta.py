"""State-dict keys, order and shapes equal the official manifests for every preset (2x/3x built on
the meta device, as the manifests were), plus the structural facts of docs/vpt_format.md §3.1."""

from __future__ import annotations

import json

import pytest
import torch

from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.vpt_config import VPTConfig


def _manifest(reference_dir, name):
    return json.loads((reference_dir / f"manifest_{name}.json").read_text())


def _build(name, aux):
    # Everything on meta: shapes only, no memory, no init cost (the 3x net has 0.5 G parameters).
    with torch.device("meta"):
        return VPTPolicy(VPTConfig.preset(name), aux_value_head=aux)


@pytest.mark.parametrize("name", ["tiny", "1x", "2x", "3x"])
def test_state_dict_matches_manifest(reference_dir, name):
    m = _manifest(reference_dir, name)
    sd = _build(name, aux=False).state_dict()
    assert [(k, list(v.shape)) for k, v in sd.items()] == [(e["key"], e["shape"]) for e in m["keys"]]
    assert len(sd) == m["n_keys"] == (102 if name == "tiny" else 134)
    assert sum(v.numel() for v in sd.values()) == m["state_dict_numel"]


@pytest.mark.parametrize("name", ["tiny", "1x"])
def test_aux_keys_appended_last(reference_dir, name):
    m = _manifest(reference_dir, name)
    sd = _build(name, aux=True).state_dict()
    keys = list(sd)
    assert keys[: m["n_keys"]] == [e["key"] for e in m["keys"]]
    assert keys[m["n_keys"] :] == m["with_aux_value_head_keys"]
    for k in m["with_aux_value_head_keys"]:
        assert sd[k].shape == sd[k.removeprefix("aux_")].shape


@pytest.mark.parametrize("name", ["tiny", "3x"])
def test_normaliser_stats_are_frozen_parameters_no_buffers(reference_dir, name):
    m = _manifest(reference_dir, name)
    policy = _build(name, aux=True)
    assert list(policy.named_buffers()) == [] == m["buffers"]
    frozen = [n for n, p in policy.named_parameters() if not p.requires_grad]
    aux = [k for k in m["with_aux_value_head_keys"] if ".normalizer." in k]
    assert frozen == m["non_trainable_parameters"] + aux
    trainable = sum(
        p.numel() for n, p in policy.named_parameters() if p.requires_grad and not n.startswith("aux_")
    )
    assert trainable == m["trainable_numel"]


def test_meta_build_to_empty_then_load(reference_dir):
    """Meta construction + to_empty gives a real CPU module that accepts a strict load."""
    policy = _build("tiny", aux=True).to_empty(device="cpu")
    sd = {k: torch.full(v.shape, 0.5) for k, v in policy.state_dict().items()}
    policy.load_state_dict(sd, strict=True)
    assert all(p.device.type == "cpu" for p in policy.parameters())
    assert policy.net.final_ln.weight[0].item() == 0.5
