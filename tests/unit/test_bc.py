"""BC loss and chunk streams (vpt_rl/algo/bc.py), and the BC config."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vpt_rl.algo.bc_chunks import EpisodeStream, bc_loss, validation_chunks
from vpt_rl.config.bc import BCConfig, load_bc_config
from vpt_rl.config.lib import ConfigError, read_yaml, to_dict
from vpt_rl.data.demos import Episode

ROOT = Path(__file__).resolve().parents[2]


def episode(i: int, n: int) -> Episode:
    """Frames whose pixel value encodes (episode, t), so the stream's output can be checked."""
    frames = np.zeros((n, 2, 2, 3), np.uint8)
    frames[:, 0, 0, 0] = i
    frames[:, 0, 0, 1] = np.arange(n)
    return Episode(f"e{i}", frames, np.full(n, i, np.int64), np.arange(n, dtype=np.int64), np.arange(n), n)


def test_bc_loss_hand_computed():
    logp_b = torch.log_softmax(torch.tensor([[[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]]]), -1)
    logp_c = torch.log_softmax(torch.tensor([[[0.3, 0.1], [2.0, -1.0]]]), -1)
    action = {"buttons": torch.tensor([[1, 0]]), "camera": torch.tensor([[0, 0]])}
    out = bc_loss({"buttons": logp_b, "camera": logp_c}, action)
    nll = -(logp_b[0, 0, 1] + logp_c[0, 0, 0] + logp_b[0, 1, 0] + logp_c[0, 1, 0]) / 2
    assert torch.allclose(out["nll"], nll) and torch.allclose(out["loss"], nll)
    assert out["acc_buttons"].item() == 0.5 and out["acc_camera"].item() == 1.0 and out["kl"].item() == 0
    valid = torch.tensor([[True, False]])
    masked = bc_loss({"buttons": logp_b, "camera": logp_c}, action, valid)
    assert torch.allclose(masked["nll"], -(logp_b[0, 0, 1] + logp_c[0, 0, 0]))
    prior = {
        "buttons": torch.log_softmax(torch.zeros(1, 2, 3), -1),
        "camera": torch.log_softmax(torch.zeros(1, 2, 2), -1),
    }
    with_kl = bc_loss({"buttons": logp_b, "camera": logp_c}, action, prior_logprobs=prior, kl_coef=0.5)
    # KL(uniform || p) = sum_x u(x) (log u(x) - log p(x)), both heads, mean over frames
    kl = sum(((-math.log(k)) - lp).mean(-1).sum() for lp, k in ((logp_b[0], 3), (logp_c[0], 2))) / 2
    assert torch.allclose(with_kl["kl"], kl)
    assert torch.allclose(with_kl["loss"], nll + 0.5 * with_kl["kl"])


def test_stream_plays_episodes_back_to_back_with_first_flags():
    lengths = [5, 3, 7]
    stream = EpisodeStream(3, lambda i: episode(i, lengths[i]), n_rows=2, chunk_len=4, seed=0)
    seen: list[list[tuple[int, int]]] = [[], []]
    for _ in range(8):
        chunk = stream.next_chunk()
        assert chunk.img_bthwc.shape == (2, 4, 2, 2, 3) and chunk.valid_bt.all()
        for r in range(2):
            ep_ids, ts = chunk.img_bthwc[r, :, 0, 0, 0], chunk.img_bthwc[r, :, 0, 0, 1]
            assert (chunk.first_bt[r] == (ts == 0)).all()  # first exactly at episode starts
            assert (chunk.buttons_bt[r] == ep_ids).all() and (chunk.camera_bt[r] == ts).all()
            seen[r] += list(zip(ep_ids.tolist(), ts.tolist()))
    for row in seen:  # inside a row, each episode is played in order from t=0 to its end
        for (e0, t0), (e1, t1) in zip(row, row[1:]):
            assert (e1, t1) == (e0, t0 + 1) or (t1 == 0 and t0 == lengths[e0] - 1)
    # each epoch hands out every episode once
    starts = sorted((r, i) for r, row in enumerate(seen) for i, (e, t) in enumerate(row) if t == 0)
    assert len(starts) >= 6
    assert stream.epoch >= 1


def test_stream_state_resumes_exactly():
    lengths = [5, 3, 7, 2]
    make = lambda: EpisodeStream(4, lambda i: episode(i, lengths[i]), n_rows=3, chunk_len=5, seed=7)  # noqa: E731
    a, b = make(), make()
    for _ in range(3):
        a.next_chunk()
    b.set_state(a.get_state())
    for _ in range(5):
        ca, cb = a.next_chunk(), b.next_chunk()
        assert (ca.img_bthwc == cb.img_bthwc).all() and (ca.first_bt == cb.first_bt).all()
    with pytest.raises(ValueError, match="rows"):
        EpisodeStream(4, lambda i: episode(i, 3), n_rows=2, chunk_len=5, seed=7).set_state(a.get_state())


def test_stream_skips_empty_episodes_and_reports_them():
    reported = []
    lengths = [0, 4]
    stream = EpisodeStream(
        2, lambda i: episode(i, lengths[i]), 1, 6, 0, on_empty=lambda ep: reported.append(ep.name)
    )
    chunk = stream.next_chunk()
    assert (chunk.buttons_bt == 1).all() and reported and set(reported) == {"e0"}
    with pytest.raises(ValueError, match="empty"):
        EpisodeStream(1, lambda i: episode(i, 0), 1, 4, 0).next_chunk()


def test_validation_chunks_cover_every_frame_once():
    eps = [episode(i, n) for i, n in enumerate([5, 3, 7])]
    chunks = list(validation_chunks(eps, n_rows=2, chunk_len=4))
    seen = sorted(
        (int(c.img_bthwc[r, t, 0, 0, 0]), int(c.img_bthwc[r, t, 0, 0, 1]))
        for c in chunks
        for r in range(c.valid_bt.shape[0])
        for t in range(4)
        if c.valid_bt[r, t]
    )
    assert seen == sorted((i, t) for i, n in enumerate([5, 3, 7]) for t in range(n))
    assert all(c.first_bt[~c.valid_bt].all() for c in chunks)  # padding never continues an episode


def test_bc_yaml_repeats_the_defaults():
    assert read_yaml(ROOT / "configs" / "bc.yaml") == to_dict(BCConfig())
    smoke = load_bc_config([ROOT / "configs" / "bc_smoke.yaml"])
    assert smoke.bc.chunk_len == 8 and smoke.frames_per_update == 32


def test_bc_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="bc.chunk_len"):
        load_bc_config([], ["bc.chunk_len=0"])
    with pytest.raises(ConfigError, match="bc.nope"):
        load_bc_config([], ["bc.nope=1"])
    with pytest.raises(ConfigError, match="val_fraction"):
        load_bc_config([], ["data.val_fraction=1.5"])


def test_voxel_bc_recipe_loads_strictly():
    """configs/bc_voxel.yaml (the measured voxel-world recipe, docs/benchmarks.md "BC to RL handoff") is a valid BC layer."""
    config = load_bc_config([ROOT / "configs" / "bc_voxel.yaml"])
    assert config.bc.lr == 1e-3 and config.bc.chunk_len == 64 and config.total_frames == 1_500_000
    assert config.bc.weight_decay == load_bc_config([]).bc.weight_decay  # the rest are the defaults
