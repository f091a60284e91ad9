"""Checkpoint files: names, latest pair, pruning, fallback when latest is corrupt or half-written,
RNG capture/restore."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from vpt_rl.atomic import atomic_torch_save
from vpt_rl.checkpoint import (
    CheckpointError,
    capture_rng,
    load_latest,
    load_state,
    prune,
    restore_rng,
    save_checkpoint,
    step_name,
)


def _saver(value: float):
    return lambda path: atomic_torch_save({"w": torch.tensor([value])}, path)


def test_names_and_latest_pair(tmp_path):
    ck = tmp_path / "checkpoints"
    w = save_checkpoint(ck, 4096, _saver(1.0), {"iteration": 3}, keep_last=0)
    assert w.name == "step_000000004096.weights" == step_name(4096) + ".weights"
    assert sorted(p.name for p in ck.iterdir()) == [
        "latest.state.pt",
        "latest.weights",
        "step_000000004096.state.pt",
        "step_000000004096.weights",
    ]
    state, weights = load_latest(ck)
    assert state["iteration"] == 3 and state["frames"] == 4096 and weights == w
    assert torch.load(ck / "latest.weights", weights_only=True)["w"].item() == 1.0


def test_keep_last_prunes_oldest_pairs(tmp_path):
    ck = tmp_path / "ck"
    for i, frames in enumerate([10, 20, 30, 40]):
        save_checkpoint(ck, frames, _saver(float(i)), {"iteration": i}, keep_last=2)
    names = sorted(p.name for p in ck.glob("step_*"))
    assert names == [
        "step_000000000030.state.pt",
        "step_000000000030.weights",
        "step_000000000040.state.pt",
        "step_000000000040.weights",
    ]
    assert prune(ck, 1) and len(list(ck.glob("step_*"))) == 2


def test_corrupt_latest_falls_back_to_newest_step_pair(tmp_path):
    ck = tmp_path / "ck"
    save_checkpoint(ck, 10, _saver(1.0), {"iteration": 1}, keep_last=0)
    save_checkpoint(ck, 20, _saver(2.0), {"iteration": 2}, keep_last=0)
    (ck / "latest.state.pt").write_bytes(b"\x00truncated")
    state, weights = load_latest(ck)
    assert state["iteration"] == 2 and weights.name == "step_000000000020.weights"
    # a step state whose weights never got written (killed in between) is not a candidate
    (ck / "step_000000000020.weights").unlink()
    state, weights = load_latest(ck)
    assert state["iteration"] == 1 and weights.name == "step_000000000010.weights"


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no readable checkpoint"):
        load_latest(tmp_path)
    bad = tmp_path / "x.state.pt"
    torch.save({"hello": 1}, bad)
    with pytest.raises(CheckpointError, match="not a vpt_rl training state"):
        load_state(bad)


def test_interrupted_save_leaves_previous_latest_intact(tmp_path):
    ck = tmp_path / "ck"
    save_checkpoint(ck, 10, _saver(1.0), {"iteration": 1}, keep_last=2)

    def dies(path):
        raise KeyboardInterrupt  # killed while writing the new weights

    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(ck, 20, dies, {"iteration": 2}, keep_last=2)
    state, weights = load_latest(ck)
    assert state["iteration"] == 1 and weights.name == "step_000000000010.weights"
    assert not list(ck.glob(".*.tmp"))


def test_rng_capture_restore():
    g = torch.Generator().manual_seed(7)
    rng = capture_rng({"sampler": g})
    a = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g).item())
    restore_rng(rng, {"sampler": g})
    b = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g).item())
    assert a == b
    with pytest.raises(CheckpointError, match="other"):
        restore_rng(rng, {"other": torch.Generator()})
