"""Fixtures and helpers shared by the weight-loading tests (test_weights.py: the two modes and
strictness; test_weights_files.py: files, round trips, reports): synthetic state dicts in the
released tiny layout (tests/data/vpt_reference: manifest_tiny.json and detfill.py).

A plain module, imported by name (pytest puts tests/unit on sys.path), as minerl_helpers.py.
"""

from __future__ import annotations

import json
import sys

import pytest
import torch

from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.vpt_config import VPTConfig

AUX_KEYS = [
    "aux_value_head.linear.weight",
    "aux_value_head.linear.bias",
    "aux_value_head.normalizer.running_mean",
    "aux_value_head.normalizer.running_mean_sq",
    "aux_value_head.normalizer.debiasing_term",
]


@pytest.fixture(scope="module")
def detfill(reference_dir):
    sys.path.insert(0, str(reference_dir))
    try:
        import detfill as module
    finally:
        sys.path.remove(str(reference_dir))
    return module


@pytest.fixture(scope="module")
def shapes(reference_dir):
    manifest = json.loads((reference_dir / "manifest_tiny.json").read_text())
    return {e["key"]: tuple(e["shape"]) for e in manifest["keys"]}


@pytest.fixture
def make_policy():
    return lambda aux: VPTPolicy(VPTConfig.preset("tiny"), aux_value_head=aux)


@pytest.fixture(scope="module")
def sd134(detfill, shapes):
    return detfill.det_fill(shapes, with_aux=False)


@pytest.fixture(scope="module")
def sd139(detfill, shapes):
    return detfill.det_fill(shapes, with_aux=True)


def snapshot(policy):
    return {k: v.detach().clone() for k, v in policy.state_dict().items()}


def assert_unchanged(policy, before):
    after = policy.state_dict()
    assert after.keys() == before.keys()
    for k in before:
        assert torch.equal(after[k], before[k]), k
