"""VPT's memory transformer: clipped-causal self-attention over a K/V cache of the last M frames,
with the relative-position bias of docs/vpt_format.md §3.3, and episode starts honoured at every step.

Episode masking (docs/vpt_format.md §0, this project's deliberate difference from the official code):
with seg = cumsum(first, time), frame t' of the chunk is visible to query t iff it is inside the
clipped-causal band (0 <= t - t' <= M-1) and seg[t'] == seg[t]; memory slot j is visible iff
its mask bit is set, no `first` occurred in the chunk up to and including t (seg[t] == 0), and it
is inside the band. Where `first` is True only at t=0 this is exactly the official rule, and any
chunking of a sequence gives the same outputs as feeding it one frame at a time.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from vpt_rl.model.impala_cnn import FanInLayer
from vpt_rl.model.init import B_ND_STD, K_SCALE, Q_SCALE, R_SCALE, UNIT_SCALE, fan_in_init_, mlp1_scale

N_REL_BASIS = 10  # rows of the relative-position table b_nd (docs/vpt_format.md §3.3)
MASKED_LOGIT = -1e9  # additive mask constant of the official code (not -inf; docs/vpt_format.md §3.3)

BlockState = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (mask_bm bool, k_bmd, v_bmd)


def attention_visibility(mask_bm: torch.Tensor, first_bt: torch.Tensor) -> torch.Tensor:
    """Which keys each query may attend to: bool (B, T, M+T), keys = [memory (M), chunk (T)].

    Query t sits at position M+t; key j is in the clipped-causal band iff 0 <= (M+t) - j <= M-1.
    """
    m = mask_bm.shape[1]
    t_len = first_bt.shape[1]
    seg_bt = torch.cumsum(first_bt.to(torch.int64), dim=1)
    q_pos = torch.arange(t_len, device=first_bt.device)[:, None] + m
    k_pos = torch.arange(m + t_len, device=first_bt.device)[None, :]
    delta_tj = q_pos - k_pos
    band_tj = (delta_tj >= 0) & (delta_tj <= m - 1)
    # Memory is visible only before the first episode start inside the chunk (docs/vpt_format.md §0).
    mem_btm = mask_bm[:, None, :] & (seg_bt == 0)[:, :, None]
    # Chunk frames are visible only within the same episode segment.
    new_btt = seg_bt[:, :, None] == seg_bt[:, None, :]
    return torch.cat([mem_btm, new_btt], dim=2) & band_tj


def next_memory_mask(mask_bm: torch.Tensor, first_bt: torch.Tensor) -> torch.Tensor:
    """Mask of the returned cache (B, M): old slots survive iff no `first` in the chunk; new frames
    are visible iff they belong to the chunk's last episode segment; keep the last M slots."""
    m = mask_bm.shape[1]
    seg_bt = torch.cumsum(first_bt.to(torch.int64), dim=1)
    last_b1 = seg_bt[:, -1:]
    return torch.cat([mask_bm & (last_b1 == 0), seg_bt == last_b1], dim=1)[:, -m:].contiguous()


class MaskedAttention(nn.Module):
    """The official `orc_block`: Q/K/V projections, 1/d-scaled logits, relative-position bias
    from `r_layer` x `b_nd`, additive -1e9 mask, float32 softmax, output projection.

    ``fused`` (default True) runs the attention through `torch.nn.functional.scaled_dot_product_attention`
    with the bias as an additive mask; False runs the plain reference path. Both agree to 1e-5 in
    float32 (tests/unit/test_fast_paths.py); `VPTPolicy.set_fast_paths` sets it for every block.
    """

    fused: bool = True

    def __init__(self, hidsize: int, heads: int, memory_size: int, n_layers: int) -> None:
        super().__init__()
        self.heads = heads
        self.memory_size = memory_size
        # Own parameter first, then children: the official state-dict order (docs/vpt_format.md §3.1).
        self.b_nd = nn.Parameter(torch.empty(N_REL_BASIS, memory_size))
        self.q_layer = nn.Linear(hidsize, hidsize, bias=True)
        self.k_layer = nn.Linear(hidsize, hidsize, bias=False)
        self.v_layer = nn.Linear(hidsize, hidsize, bias=False)
        self.proj_layer = nn.Linear(hidsize, hidsize, bias=True)
        self.r_layer = nn.Linear(hidsize, N_REL_BASIS * heads, bias=True)
        s_blk = mlp1_scale(n_layers)
        nn.init.normal_(self.b_nd, std=B_ND_STD)
        fan_in_init_(self.q_layer, Q_SCALE)
        fan_in_init_(self.k_layer, K_SCALE)
        fan_in_init_(self.v_layer, s_blk**0.5)
        fan_in_init_(self.proj_layer, s_blk**0.5)
        fan_in_init_(self.r_layer, R_SCALE)

    def forward(
        self, y_btd: torch.Tensor, visible_btj: torch.Tensor, k_bmd: torch.Tensor, v_bmd: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """y (B,T,D), visibility (B,T,M+T), cache K/V (B,M,D) -> (out (B,T,D), new K, new V)."""
        b, t, dim = y_btd.shape
        m, h = self.memory_size, self.heads
        d = dim // h
        q_btd = self.q_layer(y_btd)
        k_bjd = torch.cat([k_bmd.to(q_btd.dtype), self.k_layer(y_btd)], dim=1)
        v_bjd = torch.cat([v_bmd.to(q_btd.dtype), self.v_layer(y_btd)], dim=1)
        q_bhtd = q_btd.view(b, t, h, d).transpose(1, 2)
        k_bhjd = k_bjd.view(b, m + t, h, d).transpose(1, 2)
        v_bhjd = v_bjd.view(b, m + t, h, d).transpose(1, 2)
        r_bthn = self.r_layer(y_btd).view(b, t, h, N_REL_BASIS)
        if self.fused:
            a_btd = self._fused(q_bhtd, k_bhjd, v_bhjd, r_bthn, visible_btj)
        else:
            a_btd = self._plain(q_bhtd, k_bhjd, v_bhjd, r_bthn, visible_btj)
        return self.proj_layer(a_btd), _keep_last(k_bjd, m), _keep_last(v_bjd, m)

    def _plain(
        self,
        q_bhtd: torch.Tensor,
        k_bhjd: torch.Tensor,
        v_bhjd: torch.Tensor,
        r_bthn: torch.Tensor,
        visible_btj: torch.Tensor,
    ) -> torch.Tensor:
        """The reference computation, step by step as docs/vpt_format.md §3.3 states it (fast paths are tested
        against this)."""
        b, h, t, d = q_bhtd.shape
        m = self.memory_size
        # muP scaling: divide by d, not sqrt(d) (docs/vpt_format.md §3.3).
        logits_bhtj = torch.matmul(q_bhtd, k_bhjd.transpose(-1, -2)) / d
        # Relative bias: per head and query, a mix of the 10 rows of b_nd, indexed by the distance
        # delta = (M+t) - j; out-of-band entries are clamped (they are masked anyway).
        rel_bhtm = torch.einsum("bthn,nm->bhtm", r_bthn, self.b_nd.to(r_bthn.dtype))
        idx_bhtj = _delta_tj(t, m, q_bhtd.device).clamp(0, m - 1).expand(b, h, t, m + t)
        logits_bhtj = logits_bhtj + torch.gather(rel_bhtm, 3, idx_bhtj)
        bias_bt1j = torch.zeros(visible_btj.shape, dtype=torch.float32, device=q_bhtd.device)
        bias_bt1j = bias_bt1j.masked_fill_(~visible_btj, MASKED_LOGIT)[:, None]
        # Softmax in float32 whatever the autocast dtype (docs/vpt_format.md §3.3: all float32).
        probs_bhtj = F.softmax(logits_bhtj.float() + bias_bt1j, dim=-1).to(v_bhjd.dtype)
        return torch.matmul(probs_bhtj, v_bhjd).transpose(1, 2).reshape(b, t, h * d)

    def _fused(
        self,
        q_bhtd: torch.Tensor,
        k_bhjd: torch.Tensor,
        v_bhjd: torch.Tensor,
        r_bthn: torch.Tensor,
        visible_btj: torch.Tensor,
    ) -> torch.Tensor:
        """The same attention through PyTorch's fused kernel (`scaled_dot_product_attention`):
        relative bias and episode mask go in as one additive float mask, the 1/d scale as `scale`.

        The bias is built in one contraction with the band's slice of b_nd (no (B,H,T,M) table
        and gather); the fused kernel accumulates its softmax in float32 in every dtype.
        """
        b, h, t, d = q_bhtd.shape
        m = self.memory_size
        delta_tj = _delta_tj(t, m, q_bhtd.device).clamp(0, m - 1)
        b_ntj = self.b_nd.to(r_bthn.dtype)[:, delta_tj]  # (10, T, M+T): the band's columns
        bias_bhtj = torch.einsum("bthn,ntj->bhtj", r_bthn, b_ntj)
        bias_bhtj = bias_bhtj.masked_fill(~visible_btj[:, None], MASKED_LOGIT).to(q_bhtd.dtype)
        a_bhtd = F.scaled_dot_product_attention(q_bhtd, k_bhjd, v_bhjd, attn_mask=bias_bhtj, scale=1.0 / d)
        return a_bhtd.transpose(1, 2).reshape(b, t, h * d)


def _delta_tj(t: int, m: int, device: torch.device) -> torch.Tensor:
    """Distance (M+t) - j between query t and key j (keys = M cached frames, then the chunk)."""
    return torch.arange(t, device=device)[:, None] + m - torch.arange(m + t, device=device)


def _keep_last(x_bjd: torch.Tensor, m: int) -> torch.Tensor:
    """The last M rows of the keys/values: the cache for the next call.

    A short chunk (T <= M/4, e.g. acting one frame at a time) keeps a view: the T extra rows it
    pins are few, and a copy of the whole cache per block per step would cost more than the step's
    attention. A long chunk is copied, so that the saved state does not pin (M+T) rows.
    """
    t = x_bjd.shape[1] - m
    return x_bjd[:, -m:] if 4 * t <= m else x_bjd[:, -m:].contiguous()


class AttentionSlot(nn.Module):
    """Container that exists only so the keys read `r.orc_block.*` like the official ones."""

    def __init__(self, orc_block: MaskedAttention) -> None:
        super().__init__()
        self.orc_block = orc_block

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.orc_block(*args)


class TransformerBlock(nn.Module):
    """y = LN(x); z = y + Attn(y); out = z + mlp1(mlp0(z)).

    The residual is taken from the normalised y, not from the block input x, which is discarded:
    an official quirk that the weights depend on (docs/vpt_format.md §3.2 step 7, 11.2).
    """

    def __init__(
        self, hidsize: int, heads: int, memory_size: int, n_layers: int, pointwise_ratio: int
    ) -> None:
        super().__init__()
        # Registration order = state-dict order: mlp0, mlp1, pre_r_ln, r (docs/vpt_format.md §3.1).
        self.mlp0 = FanInLayer(
            hidsize, hidsize * pointwise_ratio, conv=False, use_norm=True, init_scale=UNIT_SCALE
        )
        self.mlp1 = FanInLayer(
            hidsize * pointwise_ratio,
            hidsize,
            conv=False,
            use_norm=False,
            init_scale=mlp1_scale(n_layers),
            use_activation=False,  # pointwise_use_activation=False (docs/vpt_format.md §1.3)
        )
        self.pre_r_ln = nn.LayerNorm(hidsize)
        self.r = AttentionSlot(MaskedAttention(hidsize, heads, memory_size, n_layers))

    def forward(
        self, x_btd: torch.Tensor, visible_btj: torch.Tensor, k_bmd: torch.Tensor, v_bmd: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y_btd = self.pre_r_ln(x_btd)
        attn_btd, k_new, v_new = self.r(y_btd, visible_btj, k_bmd, v_bmd)
        z_btd = y_btd + attn_btd
        return z_btd + self.mlp1(self.mlp0(z_btd)), k_new, v_new


class MemoryTransformer(nn.Module):
    """The official `recurrent_layer`: L transformer blocks, each with its own K/V cache and mask."""

    def __init__(
        self, hidsize: int, heads: int, memory_size: int, n_layers: int, pointwise_ratio: int
    ) -> None:
        super().__init__()
        self.memory_size = memory_size
        self.blocks = nn.ModuleList(
            [
                TransformerBlock(hidsize, heads, memory_size, n_layers, pointwise_ratio)
                for _ in range(n_layers)
            ]
        )

    def forward(
        self, x_btd: torch.Tensor, first_bt: torch.Tensor, state: list[BlockState]
    ) -> tuple[torch.Tensor, list[BlockState]]:
        new_state: list[BlockState] = []
        # The blocks' masks are the same tensor in every state this module returns (and in
        # `initial_state`): the visibility and the next mask are computed once per distinct mask,
        # not once per block (a state whose blocks hold different masks still works, per block).
        derived: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for block, (mask_bm, k_bmd, v_bmd) in zip(self.blocks, state):
            if id(mask_bm) not in derived:
                derived[id(mask_bm)] = (
                    attention_visibility(mask_bm, first_bt),
                    next_memory_mask(mask_bm, first_bt),
                )
            visible_btj, next_mask_bm = derived[id(mask_bm)]
            x_btd, k_new, v_new = block(x_btd, visible_btj, k_bmd, v_bmd)
            new_state.append((next_mask_bm, k_new, v_new))
        return x_btd, new_state
