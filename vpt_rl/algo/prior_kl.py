"""The frozen prior of the KL term (docs/implementation_details.md items 7 and 15) and how its
distributions reach the policy phase (`ppg.prior_logprobs`).

`PriorKL` is the one place that knows the storage mode: the roller asks it for the prior's
initial memory and to run the prior over each segment (carrying that memory, storing in the
segment what the mode keeps), and the policy phase asks it for the prior's log-probs of a
minibatch. The modes:

- ``fp32`` / ``bf16``: the segment keeps the prior's (B, T, 8762) log-prob table in that dtype;
  the policy phase upcasts the minibatch's rows.
- ``recompute``: the segment keeps only the prior's memory state at its start; the policy phase
  runs the prior over the minibatch's rows from it (the same KL bit for bit, no table at all).
"""

from __future__ import annotations

import torch
from torch import Tensor

from vpt_rl.algo.buffer import Segment
from vpt_rl.model.action_heads import N_BUTTON_CLASSES, N_CAMERA_CLASSES
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.state import State, state_cat, state_select, state_to
from vpt_rl.model.vpt_config import VPTConfig

__all__ = ["PRIOR_LOGPROBS_DTYPE", "PriorKL", "prior_storage"]

Logprobs = dict[str, Tensor]

#: ppg.prior_logprobs -> the dtype of the log-prob table a segment keeps (None: recomputed)
PRIOR_LOGPROBS_DTYPE: dict[str, torch.dtype | None] = {
    "recompute": None,
    "bf16": torch.bfloat16,
    "fp32": torch.float32,
}


def prior_storage(mode: str, vpt_config: VPTConfig, segment_len: int) -> str:
    """``ppg.prior_logprobs`` resolved: "auto" keeps whichever costs fewer bytes per env row, the
    prior's start state (recompute: L x 2 x M x D float32) or its log-prob table in bf16
    (T x 8762 x 2 bytes); measured in bench/speed/ppg_iteration.py and docs/scaling.md."""
    if mode != "auto":
        return mode
    c = vpt_config
    state_bytes = c.n_recurrence_layers * 2 * c.memory_size * c.hidsize * 4
    table_bytes = segment_len * (N_BUTTON_CLASSES + N_CAMERA_CLASSES) * 2
    return "recompute" if state_bytes < table_bytes else "bf16"


class PriorKL:
    """The frozen ``prior`` (eval mode, no gradients; it never updates value statistics) and its
    storage mode ``storage`` ("recompute", "bf16" or "fp32"; see the module docstring).

    ``chunks``: the prior runs over a segment in this many row chunks (the policy phase's
    minibatch count in the trainer), so its activations never exceed a minibatch's.
    """

    def __init__(self, prior: VPTPolicy, storage: str = "fp32", chunks: int = 1) -> None:
        if storage not in PRIOR_LOGPROBS_DTYPE:
            raise ValueError(
                f"PriorKL: storage must be one of {sorted(PRIOR_LOGPROBS_DTYPE)}, got {storage!r}"
            )
        if chunks < 1:
            raise ValueError(f"PriorKL: chunks must be >= 1, got {chunks}")
        self.prior = prior
        self.storage = storage
        self.chunks = chunks

    @classmethod
    def from_config(
        cls, prior: VPTPolicy | None, mode: str, vpt_config: VPTConfig, segment_len: int, chunks: int = 1
    ) -> PriorKL | None:
        """The trainer's: ``mode`` is ``ppg.prior_logprobs`` ("auto" resolved by `prior_storage`);
        None without a prior (no KL term)."""
        if prior is None:
            return None
        return cls(prior, prior_storage(mode, vpt_config, segment_len), chunks)

    @property
    def table_dtype(self) -> torch.dtype | None:
        """The dtype of the log-prob table a segment keeps; None in recompute mode (no table)."""
        return PRIOR_LOGPROBS_DTYPE[self.storage]

    # ------------------------------------------------------------------ rollouts
    def initial_state(self, num_envs: int, device: torch.device) -> State:
        """The prior's empty memory for ``num_envs`` envs (fresh episodes)."""
        return self.prior.initial_state(num_envs, device=device)

    @torch.no_grad()
    def run_segment(self, seg: Segment, state0: State, device: torch.device) -> State:
        """Run the prior over ``seg`` from its own memory ``state0`` (CPU) and return its memory at
        the segment end (on ``device``), for the next segment: the prior keeps its own memory,
        reset by the same `first` flags (docs/implementation_details.md item 7). One call per row
        chunk; chunked == stepwise, since `first` is honoured at every step.

        Stores in ``seg`` what the policy phase will read: the log-prob table in the storage dtype
        (``seg.prior_logprobs``, CPU), or in recompute mode the start state
        (``seg.prior_state0``) and no table: each chunk's log-probs are dropped on the device,
        never copied or concatenated."""
        dtype = self.table_dtype
        tables: list[Logprobs] = []
        states: list[State] = []
        for rows in torch.arange(seg.num_rows).tensor_split(min(self.chunks, seg.num_rows)):
            out, new_state = self.prior(
                seg.img_bthwc[rows].to(device),
                seg.first_bt[rows].to(device),
                state_to(state_select(state0, rows), device),
            )
            if dtype is not None:
                tables.append({k: v.to(dtype).cpu() for k, v in out.logprobs.items()})
            states.append(new_state)
        if dtype is None:
            seg.prior_state0 = state0
        else:
            seg.prior_logprobs = {k: torch.cat([t[k] for t in tables]) for k in tables[0]}
        return state_cat(states)

    # ------------------------------------------------------------------ policy phase
    @torch.no_grad()
    def logprobs(self, mb: Segment) -> Logprobs:
        """The prior's distributions on a minibatch (float32, on the minibatch's device): the
        stored table upcast, or recomputed from the rows' prior start state (recompute mode)."""
        if self.table_dtype is not None:
            if mb.prior_logprobs is None:
                raise ValueError(f"PriorKL({self.storage}): the minibatch has no prior log-probs")
            return {k: v.float() for k, v in mb.prior_logprobs.items()}
        if mb.prior_state0 is None:
            raise ValueError("PriorKL(recompute): the minibatch has no prior start state")
        out, _ = self.prior(mb.img_bthwc, mb.first_bt, mb.prior_state0)
        return out.logprobs
