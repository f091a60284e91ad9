"""Rollout segments `[envs, T]` and minibatches of whole env rows with their start memory state.

Why not SB3's RolloutBuffer: it stores single frames and shuffles them individually, which a
transformer-memory policy cannot train on (each frame needs the frames before it and the memory
state at the start of its row), and PPG keeps many segments for the auxiliary phase.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from vpt_rl.model.state import State, state_cat, state_select, state_to

__all__ = ["Segment", "AuxBuffer", "minibatch_rows", "select_rows", "cat_rows", "segment_to"]

Logprobs = dict[str, Tensor]


@dataclass
class Segment:
    """One rollout segment of B env rows x T frames (kept on the CPU between phases).

    Step t of row b: the policy saw ``img_bthwc[b,t]`` (``first_bt[b,t]``: an episode starts
    there), took ``action`` with behaviour log-prob ``logprob_bt`` and value ``vpred_bt`` (raw
    units), then got ``reward_bt`` and the end flags; ``final_value_bt`` is V(final observation)
    where the episode was truncated (0 elsewhere); ``next_value_b`` is V(observation after the
    segment). ``state0``/``prior_state0`` are the policy's/prior's memory before step 0.
    Filled later: ``prior_logprobs`` (roller, when there is a prior), ``adv_bt``/``ret_bt`` (GAE),
    ``old_logprobs`` (auxiliary phase).
    """

    img_bthwc: Tensor
    first_bt: Tensor
    action: dict[str, Tensor]
    logprob_bt: Tensor
    vpred_bt: Tensor
    reward_bt: Tensor
    terminated_bt: Tensor
    truncated_bt: Tensor
    final_value_bt: Tensor
    next_value_b: Tensor
    state0: State
    prior_state0: State | None = None
    prior_logprobs: Logprobs | None = None
    adv_bt: Tensor | None = None
    ret_bt: Tensor | None = None
    old_logprobs: Logprobs | None = None

    @property
    def num_rows(self) -> int:
        """B (env rows)."""
        return self.first_bt.shape[0]

    @property
    def num_frames(self) -> int:
        """B * T."""
        return self.first_bt.numel()

    def check(self) -> None:
        """Assert every [B, T] field has the same B and T (where modules meet; docs/design.md
        "Style" 2)."""
        b, t = self.first_bt.shape
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor) and f.name.endswith("_bt"):
                tensors = {f.name: value}
            elif isinstance(value, dict):
                tensors = {f"{f.name}[{k}]": v for k, v in value.items()}
            else:
                continue
            for name, x in tensors.items():
                if tuple(x.shape[:2]) != (b, t):
                    raise ValueError(f"Segment.{name} has shape {tuple(x.shape)}, expected ({b}, {t}, ...)")
        if tuple(self.img_bthwc.shape[:2]) != (b, t) or tuple(self.next_value_b.shape) != (b,):
            raise ValueError(
                f"Segment: img {tuple(self.img_bthwc.shape)} / next_value {tuple(self.next_value_b.shape)} "
                f"do not match first ({b}, {t})"
            )


def _map(
    seg: Segment,
    tensor_fn: Callable[[Tensor], Tensor],
    state_fn: Callable[[State], State],
    dict_fn: Callable[[Logprobs], Logprobs],
) -> Segment:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(seg):
        value = getattr(seg, f.name)
        if value is None:
            values[f.name] = None
        elif isinstance(value, Tensor):
            values[f.name] = tensor_fn(value)
        elif isinstance(value, dict):
            values[f.name] = dict_fn(value)
        else:
            values[f.name] = state_fn(value)
    return Segment(**values)


def select_rows(seg: Segment, rows: Tensor) -> Segment:
    """The env rows ``rows`` (LongTensor) of a segment, every field (states included)."""
    rows = rows.to(torch.long)
    return _map(
        seg,
        lambda x: x[rows.to(x.device)],
        lambda s: state_select(s, rows),
        lambda d: {k: v[rows.to(v.device)] for k, v in d.items()},
    )


def cat_rows(segs: Sequence[Segment]) -> Segment:
    """Concatenate segments (same T) along the row dimension; optional fields must agree on None."""
    if len(segs) == 1:
        return segs[0]
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Segment):
        items = [getattr(s, f.name) for s in segs]
        if all(v is None for v in items):
            values[f.name] = None
        elif any(v is None for v in items):
            raise ValueError(f"cat_rows: field {f.name} is set in some segments and None in others")
        elif isinstance(items[0], Tensor):
            values[f.name] = torch.cat(items, dim=0)
        elif isinstance(items[0], dict):
            values[f.name] = {k: torch.cat([d[k] for d in items], dim=0) for k in items[0]}
        else:
            values[f.name] = state_cat(items)
    return Segment(**values)


def segment_to(seg: Segment, device: torch.device | str) -> Segment:
    """Every tensor of the segment on ``device`` (minibatches move to the training device)."""
    return _map(
        seg,
        lambda x: x.to(device),
        lambda s: state_to(s, device),
        lambda d: {k: v.to(device) for k, v in d.items()},
    )


def minibatch_rows(n_rows: int, n_minibatches: int, generator: torch.Generator) -> list[Tensor]:
    """A random partition of ``range(n_rows)`` into ``n_minibatches`` near-equal index sets.

    Whole rows, never single frames: each row is trained from its stored start state over its
    T frames in one call, so memory within the row is exact (docs/implementation_details.md
    item 12).
    """
    if not 1 <= n_minibatches <= n_rows:
        raise ValueError(f"minibatch_rows: need 1 <= n_minibatches ({n_minibatches}) <= rows ({n_rows})")
    perm = torch.randperm(n_rows, generator=generator)
    return list(perm.tensor_split(n_minibatches))


class AuxBuffer:
    """The segments of the last N_pi iterations (CPU), for PPG's auxiliary phase.

    Rows are numbered across segments (segment i, row r) -> i * B + r, so an auxiliary minibatch
    can mix rows of different iterations, each with its own start state.
    """

    def __init__(self) -> None:
        self.segments: list[Segment] = []

    def __len__(self) -> int:
        return len(self.segments)

    def add(self, seg: Segment, keep_last: int | None = None) -> None:
        """Keep a segment, and at most the ``keep_last`` newest (None: all). The prior's log-probs
        and start state are dropped: the auxiliary phase reads neither, and at 1x the start state
        alone is 4 MB per env row (docs/implementation_details.md item 36)."""
        self.segments.append(dataclasses.replace(seg, prior_logprobs=None, prior_state0=None))
        if keep_last is not None:
            self.segments = self.segments[-keep_last:]

    def clear(self) -> None:
        """Forget every segment (after an auxiliary phase)."""
        self.segments = []

    @property
    def num_rows(self) -> int:
        """Total env rows over all buffered segments."""
        return sum(s.num_rows for s in self.segments)

    def rows(self, rows: Tensor) -> Segment:
        """Gather global row indices into one Segment (rows in the given order)."""
        offsets = [0]
        for s in self.segments:
            offsets.append(offsets[-1] + s.num_rows)
        parts: list[Segment] = []
        order: list[Tensor] = []
        for i, s in enumerate(self.segments):
            mask = (rows >= offsets[i]) & (rows < offsets[i + 1])
            if mask.any():
                parts.append(select_rows(s, rows[mask] - offsets[i]))
                order.append(torch.nonzero(mask).flatten())
        if not parts:
            raise ValueError("AuxBuffer.rows: no rows selected")
        merged = cat_rows(parts)
        # restore the requested order (cat grouped them by segment)
        inverse = torch.argsort(torch.cat(order))
        return select_rows(merged, inverse)

    def state_dict(self) -> dict:
        """Plain data for the checkpoint (exact resume mid-cycle)."""
        # shallow (torch.save copies the tensors); dataclasses.asdict would deep-copy them first
        return {
            "segments": [{f.name: getattr(s, f.name) for f in dataclasses.fields(s)} for s in self.segments]
        }

    def load_state_dict(self, data: dict) -> None:
        """Inverse of `state_dict`."""
        self.segments = [_segment_from_plain(d) for d in data["segments"]]


def _segment_from_plain(d: dict) -> Segment:
    d = dict(d)
    for key in ("state0", "prior_state0"):
        if d.get(key) is not None:
            d[key] = [tuple(block) for block in d[key]]
    return Segment(**d)
