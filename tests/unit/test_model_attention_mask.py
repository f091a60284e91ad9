"""The visibility rule of the memory attention, worked out by hand on small cases (docs/vpt_format.md §0, 3.3)."""

from __future__ import annotations

import torch

from vpt_rl.model.transformer import attention_visibility, next_memory_mask


def _b(rows):
    return torch.tensor(rows, dtype=torch.bool)


def test_band_without_resets():
    """M=3, T=2, all memory visible: query t sees the M-1 frames before it and itself."""
    vis = attention_visibility(_b([[1, 1, 1]]), _b([[0, 0]]))[0].int()
    # keys: mem0 mem1 mem2 | new0 new1
    assert vis.tolist() == [[0, 1, 1, 1, 0], [0, 0, 1, 1, 1]]


def test_first_at_t0_hides_memory_official_rule():
    vis = attention_visibility(_b([[1, 1, 1]]), _b([[1, 0]]))[0].int()
    assert vis.tolist() == [[0, 0, 0, 1, 0], [0, 0, 0, 1, 1]]
    assert next_memory_mask(_b([[1, 1, 1]]), _b([[1, 0]])).int().tolist() == [[0, 1, 1]]


def test_first_mid_chunk_hides_everything_before_it():
    """M=3, T=4, reset at t=2: queries 2,3 see only frames >= 2; queries 0,1 see memory too."""
    vis = attention_visibility(_b([[0, 1, 1]]), _b([[0, 0, 1, 0]]))[0].int()
    assert vis.tolist() == [
        [0, 1, 1, 1, 0, 0, 0],
        [0, 0, 1, 1, 1, 0, 0],
        [0, 0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 1, 1],
    ]
    # Kept: the last M=3 of [mem (hidden, a reset happened), new0 0, new1 0, new2 1, new3 1].
    assert next_memory_mask(_b([[0, 1, 1]]), _b([[0, 0, 1, 0]])).int().tolist() == [[0, 1, 1]]


def test_masked_memory_slots_stay_hidden_and_rows_are_independent():
    mask = _b([[0, 0, 1], [1, 1, 1]])
    first = _b([[0], [0]])
    vis = attention_visibility(mask, first).int()
    assert vis[0, 0].tolist() == [0, 0, 1, 1]  # mem0 out of band, mem1 masked
    assert vis[1, 0].tolist() == [0, 1, 1, 1]
    assert next_memory_mask(mask, first).int().tolist() == [[0, 1, 1], [1, 1, 1]]


def test_long_chunk_mask_is_last_segment_only():
    """T > M: the returned mask covers the last M frames, visible iff in the last segment."""
    first = _b([[0, 0, 0, 0, 1, 0, 0]])
    assert next_memory_mask(_b([[1, 1, 1, 1]]), first).int().tolist() == [[0, 1, 1, 1]]
    assert next_memory_mask(_b([[1, 1, 1, 1]]), _b([[0] * 7])).int().tolist() == [[1, 1, 1, 1]]
