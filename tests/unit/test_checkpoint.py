"""Sharded checkpoint files: names, manifests (complete or ignored), per-rank parts, latest,
pruning, fallback when latest is corrupt or half-written, RNG capture/restore."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from vpt_rl.atomic import atomic_torch_save
from vpt_rl.checkpoint import (
    CheckpointError,
    capture_rng,
    complete_steps,
    load_latest,
    load_rank_state,
    load_rank_states,
    load_state,
    prune,
    restore_rng,
    save_checkpoint,
    step_name,
)


def _saver(value: float):
    return lambda path: atomic_torch_save({"w": torch.tensor([value])}, path)


def _save(ck, frames, value, keep_last=0, **kw):
    return save_checkpoint(
        ck, frames, _saver(value), {"iteration": int(value)}, {"mine": value}, keep_last, **kw
    )


def test_names_and_latest_set(tmp_path):
    ck = tmp_path / "checkpoints"
    w = save_checkpoint(ck, 4096, _saver(1.0), {"iteration": 3}, {"roller": "r0"}, keep_last=0)
    assert w.name == "step_000000004096.weights" == step_name(4096) + ".weights"
    assert sorted(p.name for p in ck.iterdir()) == [
        "latest.json",
        "latest.weights",
        "step_000000004096.manifest.json",
        "step_000000004096.rank0.pt",
        "step_000000004096.state.pt",
        "step_000000004096.weights",
    ]
    state, weights = load_latest(ck)
    assert state["iteration"] == 3 and state["frames"] == 4096 and weights == w
    assert state["step"] == "step_000000004096" and state["world_size"] == 1
    assert load_rank_state(ck, state["step"], 0)["roller"] == "r0"
    assert torch.load(ck / "latest.weights", weights_only=True)["w"].item() == 1.0
    # latest.weights is the step's weights file itself (a hard link), not a second copy
    assert (ck / "latest.weights").stat().st_ino == w.stat().st_ino


def test_keep_last_prunes_oldest_sets(tmp_path):
    ck = tmp_path / "ck"
    for i, frames in enumerate([10, 20, 30, 40]):
        _save(ck, frames, float(i), keep_last=2)
    names = sorted(p.name for p in ck.glob("step_*"))
    assert names == [
        "step_000000000030.manifest.json",
        "step_000000000030.rank0.pt",
        "step_000000000030.state.pt",
        "step_000000000030.weights",
        "step_000000000040.manifest.json",
        "step_000000000040.rank0.pt",
        "step_000000000040.state.pt",
        "step_000000000040.weights",
    ]
    assert prune(ck, 1) and len(list(ck.glob("step_*"))) == 4
    assert torch.load(ck / "latest.weights", weights_only=True)["w"].item() == 3.0  # survives the prune


def test_a_set_without_its_manifest_is_never_resumed_from(tmp_path):
    """A checkpoint is complete only with its manifest, written after every rank's file; a rank
    that died before writing its part leaves the previous complete set in force."""
    ck = tmp_path / "ck"
    _save(ck, 10, 1.0)
    _save(ck, 20, 2.0)
    (ck / "step_000000000020.manifest.json").unlink()  # killed before the manifest
    state, weights = load_latest(ck)
    assert state["iteration"] == 1 and weights.name == "step_000000000010.weights"
    assert complete_steps(ck) == [(10, "step_000000000010")]
    # the manifest lists every rank's file: one missing makes the set incomplete
    _save(ck, 30, 3.0)
    (ck / "step_000000000030.rank0.pt").unlink()
    assert load_latest(ck)[0]["iteration"] == 1


def test_two_ranks_write_their_own_parts(tmp_path):
    """Rank 1 writes only its part; rank 0 the weights, replicated state and (after the barrier)
    the manifest naming both ranks' files."""
    ck = tmp_path / "ck"
    calls = []
    save_checkpoint(
        ck, 8, _saver(9.0), None, {"mine": 1}, 0, rank=1, world_size=2, barrier=lambda: calls.append(1)
    )
    assert sorted(p.name for p in ck.iterdir()) == ["step_000000000008.rank1.pt"] and calls == [1]
    with pytest.raises(CheckpointError, match="no readable checkpoint"):
        load_latest(ck)
    save_checkpoint(ck, 8, _saver(9.0), {"iteration": 5}, {"mine": 0}, 0, rank=0, world_size=2)
    state, _ = load_latest(ck)
    assert state["world_size"] == 2 and [r["mine"] for r in load_rank_states(ck)] == [0, 1]


def test_corrupt_latest_falls_back_to_newest_complete_set(tmp_path):
    ck = tmp_path / "ck"
    _save(ck, 10, 1.0)
    _save(ck, 20, 2.0)
    (ck / "latest.json").write_text("{trunc")
    state, weights = load_latest(ck)
    assert state["iteration"] == 2 and weights.name == "step_000000000020.weights"
    (ck / "step_000000000020.state.pt").write_bytes(b"\x00truncated")
    state, weights = load_latest(ck)
    assert state["iteration"] == 1 and weights.name == "step_000000000010.weights"
    # a set whose weights never got written (killed in between) is not a candidate
    (ck / "step_000000000010.weights").unlink()
    with pytest.raises(CheckpointError, match="no readable checkpoint"):
        load_latest(ck)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no readable checkpoint"):
        load_latest(tmp_path)
    bad = tmp_path / "x.state.pt"
    torch.save({"hello": 1}, bad)
    with pytest.raises(CheckpointError, match="not a vpt_rl training state"):
        load_state(bad)


def test_interrupted_save_leaves_previous_latest_intact(tmp_path):
    ck = tmp_path / "ck"
    _save(ck, 10, 1.0, keep_last=2)

    def dies(path):
        raise KeyboardInterrupt  # killed while writing the new weights

    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(ck, 20, dies, {"iteration": 2}, {}, keep_last=2)
    state, weights = load_latest(ck)
    assert state["iteration"] == 1 and weights.name == "step_000000000010.weights"
    assert torch.load(ck / "latest.weights", weights_only=True)["w"].item() == 1.0
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
