"""The policy's memory state and helpers to slice, join, detach and move it.

`State = list[tuple[mask_bm, k_bmd, v_bmd]]`, one tuple per transformer block:

- `mask_bm`: bool (B, M), True = that cached frame may be attended to;
- `k_bmd`, `v_bmd`: float (B, M, D), the cached key/value projections of the last M frames,
  oldest first, before the split into heads.

All helpers are pure (they return new lists) and act on the batch dimension of every tensor.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

State = list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]

Rows = torch.Tensor | Sequence[int] | slice


def initial_state(n_layers: int, batch_size: int, memory_size: int, hidsize: int, device=None) -> State:
    """Empty memory: mask all False (nothing visible), K = V = 0 (never attended to; docs/vpt_format.md §3.4)."""
    # one mask tensor shared by the blocks (they are always equal; the transformer then derives
    # the visibility once per call instead of once per block)
    mask_bm = torch.zeros(batch_size, memory_size, dtype=torch.bool, device=device)
    return [
        (
            mask_bm,
            torch.zeros(batch_size, memory_size, hidsize, device=device),
            torch.zeros(batch_size, memory_size, hidsize, device=device),
        )
        for _ in range(n_layers)
    ]


def _index(rows: Rows, device: torch.device) -> torch.Tensor | slice:
    if isinstance(rows, slice):
        return rows
    if isinstance(rows, torch.Tensor):
        return rows.to(device)
    return torch.as_tensor(list(rows), dtype=torch.long, device=device)


def _shared(fn, masks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``fn`` applied once per distinct mask tensor: blocks that shared a mask still share it."""
    memo: dict[int, torch.Tensor] = {}
    out = []
    for m in masks:
        if id(m) not in memo:
            memo[id(m)] = fn(m)
        out.append(memo[id(m)])
    return out


def state_select(state: State, rows: Rows) -> State:
    """Rows of the batch (LongTensor / bool tensor / list of ints / slice)."""
    idx = _index(rows, state[0][1].device)
    masks = _shared(lambda m: m[idx], [b[0] for b in state])
    return [(mask, k[idx], v[idx]) for mask, (_, k, v) in zip(masks, state)]


def state_cat(states: Sequence[State]) -> State:
    """Concatenate states along the batch dimension (all must have the same number of blocks)."""
    if not states:
        raise ValueError("state_cat: no states given")
    n_blocks = {len(s) for s in states}
    if len(n_blocks) != 1:
        raise ValueError(f"state_cat: states have different numbers of blocks {sorted(n_blocks)}")
    out: State = []
    memo: dict[tuple[int, ...], torch.Tensor] = {}
    for i in range(len(states[0])):
        key = tuple(id(s[i][0]) for s in states)  # blocks that shared masks still share the result
        if key not in memo:
            memo[key] = torch.cat([s[i][0] for s in states], dim=0)
        k_cat = torch.cat([s[i][1] for s in states], dim=0)
        v_cat = torch.cat([s[i][2] for s in states], dim=0)
        out.append((memo[key], k_cat, v_cat))
    return out


def state_detach(state: State) -> State:
    """Cut the graph (truncated back-propagation through time between chunks)."""
    return [(mask, k.detach(), v.detach()) for mask, k, v in state]


def state_to(state: State, device: torch.device | str) -> State:
    """Move every tensor to `device`."""
    masks = _shared(lambda m: m.to(device), [b[0] for b in state])
    return [(mask, k.to(device), v.to(device)) for mask, (_, k, v) in zip(masks, state)]


def state_clone(state: State) -> State:
    """Independent copy (detached from the graph)."""
    masks = _shared(torch.clone, [b[0] for b in state])
    return [(mask, k.detach().clone(), v.detach().clone()) for mask, (_, k, v) in zip(masks, state)]


def state_batch_size(state: State) -> int:
    """B of a state."""
    return state[0][0].shape[0]
