"""`VPTPolicy`: OpenAI's VPT policy network re-implemented (docs/vpt_format.md §3), state-dict
compatible with the released `.weights` files, plus an optional PPG auxiliary value head."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.nn import functional as F

from vpt_rl.model import action_heads
from vpt_rl.model.action_heads import Action, DictActionHead, Logprobs
from vpt_rl.model.impala_cnn import FanInLayer, ImgObsProcess
from vpt_rl.model.init import UNIT_SCALE
from vpt_rl.model.state import State
from vpt_rl.model.state import initial_state as _initial_state
from vpt_rl.model.transformer import MaskedAttention, MemoryTransformer
from vpt_rl.model.value_heads import ScaledValueHead
from vpt_rl.model.vpt_config import VPTConfig


@dataclasses.dataclass
class PolicyOutput:
    """What `VPTPolicy.forward` returns besides the new state.

    logprobs: {"buttons": (B,T,8641), "camera": (B,T,121)} normalised log-probs, temperature applied.
    vpred: (B,T) true value prediction in normalised units (`value_head.denormalize` for raw).
    aux_vpred: (B,T) aux value prediction (normalised by the aux head's own stats), or None.
    latent: (B,T,D) output of `final_ln`, the input of every head.
    """

    logprobs: Logprobs
    vpred: torch.Tensor
    aux_vpred: torch.Tensor | None
    latent: torch.Tensor


class VPTNet(nn.Module):
    """The official `MinecraftPolicy` (`net.*` keys): image encoder, memory transformer, output trunk."""

    def __init__(self, config: VPTConfig) -> None:
        super().__init__()
        d = config.hidsize
        self.img_process = ImgObsProcess(
            config.img_size,
            config.cnn_chans,
            d,
            norm_groups=config.init_norm_kwargs["group_norm_groups"],
            post_pool_groups=config.impala_kwargs["post_pool_groups"],
        )
        self.recurrent_layer = MemoryTransformer(
            d, config.attention_heads, config.memory_size, config.n_recurrence_layers, config.pointwise_ratio
        )
        self.lastlayer = FanInLayer(d, d, conv=False, use_norm=True, init_scale=UNIT_SCALE)
        self.final_ln = nn.LayerNorm(d)

    def forward(
        self, img_bthwc: torch.Tensor, first_bt: torch.Tensor, state: State
    ) -> tuple[torch.Tensor, State]:
        x_btd = self.img_process(img_bthwc)
        x_btd, new_state = self.recurrent_layer(x_btd, first_bt, state)
        # ReLU between the transformer and lastlayer, as in the official trunk (docs/vpt_format.md §3.2 step 8).
        latent_btd = self.final_ln(self.lastlayer(F.relu(x_btd)))
        return latent_btd, new_state


class VPTPolicy(nn.Module):
    """VPT policy: `net`, `value_head`, `pi_head` (official 134 keys) and `aux_value_head` (5 more
    keys, appended last; None when `aux_value_head=False`).

    Memory state (`State`, see `vpt_rl.model.state`): a list with one tuple per transformer block,
    `(mask_bm, k_bmd, v_bmd)`:

    - `mask_bm` bool (B, M): True = that cached frame may be attended to;
    - `k_bmd`, `v_bmd` float32 (B, M, D): keys/values of the last M frames, oldest first.

    M = `config.memory_size` (128 for released models). The official code holds the same data as
    `(mask (B,1,M) or None, (K, V))`; `initial_state` is all-False masks and zero K/V.

    `first` is honoured at every step (docs/vpt_format.md §0): a True at time t hides everything before t
    from t onwards, so any chunking of a sequence equals stepping it one frame at a time.
    Train and eval mode compute the same forward (no dropout, no batch norm; docs/vpt_format.md §5).
    """

    def __init__(self, config: VPTConfig, aux_value_head: bool = True) -> None:
        super().__init__()
        self.config = config
        d = config.hidsize
        # Registration order = state-dict order: net, value_head, pi_head, then aux (docs/vpt_format.md §3.1).
        self.net = VPTNet(config)
        self.value_head = ScaledValueHead(d)
        self.pi_head = DictActionHead(d, config.temperature)
        self.aux_value_head = ScaledValueHead(d) if aux_value_head else None
        # The trunk's autocast dtype (None = float32 throughout); see `set_fast_paths`.
        self.autocast_dtype: torch.dtype | None = None

    # ------------------------------------------------------------------ fast paths
    def set_fast_paths(self, fused_attention: bool = True, autocast_dtype: torch.dtype | None = None) -> None:
        """Choose how the forward is computed (the weights and the maths stay the same).

        ``fused_attention`` (default on): the memory attention through PyTorch's fused
        `scaled_dot_product_attention`; equal to the plain path to 1e-5 in float32.
        ``autocast_dtype`` (default None = float32): e.g. ``torch.bfloat16`` runs the CNN and the
        transformer under autocast; the heads (log-softmax, values) and the memory state stay
        float32. Per-policy settings, no global state.
        """
        for module in self.net.recurrent_layer.modules():
            if isinstance(module, MaskedAttention):
                module.fused = bool(fused_attention)
        self.autocast_dtype = autocast_dtype

    # ------------------------------------------------------------------ state
    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """Empty memory for `batch_size` rows (on the parameters' device unless `device` is given)."""
        if device is None:
            device = self.value_head.linear.weight.device
        cfg = self.config
        return _initial_state(cfg.n_recurrence_layers, batch_size, cfg.memory_size, cfg.hidsize, device)

    # ------------------------------------------------------------------ forward
    def _check_inputs(self, img: torch.Tensor, first: torch.Tensor, state: State) -> None:
        h, w, c = self.config.img_shape
        if img.dtype != torch.uint8 or img.dim() != 5 or tuple(img.shape[2:]) != (h, w, c):
            raise ValueError(
                f"VPTPolicy: img must be uint8 (B,T,{h},{w},{c}), got {img.dtype} {tuple(img.shape)}"
            )
        if first.dtype != torch.bool or tuple(first.shape) != tuple(img.shape[:2]):
            raise ValueError(
                f"VPTPolicy: first must be bool {tuple(img.shape[:2])}, got {first.dtype} {tuple(first.shape)}"
            )
        n, m, d = self.config.n_recurrence_layers, self.config.memory_size, self.config.hidsize
        if len(state) != n:
            raise ValueError(f"VPTPolicy: state has {len(state)} blocks, config has {n}")
        b = img.shape[0]
        for i, (mask, k, v) in enumerate(state):
            if tuple(mask.shape) != (b, m) or tuple(k.shape) != (b, m, d) or tuple(v.shape) != (b, m, d):
                raise ValueError(
                    f"VPTPolicy: state block {i} has mask {tuple(mask.shape)}, K {tuple(k.shape)}, "
                    f"V {tuple(v.shape)}; expected ({b}, {m}), ({b}, {m}, {d})"
                )

    def forward(self, img: torch.Tensor, first: torch.Tensor, state: State) -> tuple[PolicyOutput, State]:
        """img uint8 (B,T,H,W,3), first bool (B,T), state -> (PolicyOutput, new state)."""
        self._check_inputs(img, first, state)
        with torch.autocast(
            img.device.type,
            dtype=self.autocast_dtype or torch.float32,
            enabled=self.autocast_dtype is not None,
        ):
            latent_btd, new_state = self.net(img, first, state)
        if self.autocast_dtype is not None:
            latent_btd = latent_btd.float()
            # the memory state stays float32 (its documented dtype), whatever the trunk computed in
            new_state = [(m, k.float(), v.float()) for m, k, v in new_state]
        out = PolicyOutput(
            logprobs=self.pi_head(latent_btd),
            vpred=self.value_head(latent_btd),
            aux_vpred=None if self.aux_value_head is None else self.aux_value_head(latent_btd),
            latent=latent_btd,
        )
        return out, new_state

    @torch.no_grad()
    def act(
        self,
        img: torch.Tensor,
        first: torch.Tensor,
        state: State,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
        noise: Action | None = None,
    ) -> tuple[Action, torch.Tensor, torch.Tensor, State]:
        """Sample (Gumbel-max, docs/vpt_format.md §6.7) or take the argmax; returns (action {"buttons", "camera"}
        int64 (B,T), logprob (B,T), value (B,T) denormalised, new state). `generator` (on the
        policy's device) makes the sampling reproducible without touching the global RNG; `noise`
        (from `action_heads.draw_noise`) gives the uniform draws instead."""
        out, new_state = self(img, first, state)
        action = action_heads.sample(
            out.logprobs, deterministic=deterministic, generator=generator, noise=noise
        )
        logprob_bt = action_heads.logprob(out.logprobs, action)
        value_bt = self.value_head.denormalize(out.vpred)  # act returns raw units (docs/vpt_format.md §5)
        return action, logprob_bt, value_bt, new_state

    # ------------------------------------------------------------------ distributions
    @staticmethod
    def logprob(logprobs: Logprobs, action: Action) -> torch.Tensor:
        """log p(buttons) + log p(camera) -> (B,T); camera always included (docs/vpt_format.md §6.7)."""
        return action_heads.logprob(logprobs, action)

    @staticmethod
    def entropy(logprobs: Logprobs) -> torch.Tensor:
        """Entropy summed over both heads -> (B,T)."""
        return action_heads.entropy(logprobs)

    @staticmethod
    def kl(logprobs_p: Logprobs, logprobs_q: Logprobs) -> torch.Tensor:
        """KL(p || q) summed over both heads -> (B,T)."""
        return action_heads.kl(logprobs_p, logprobs_q)

    # ------------------------------------------------------------------ optimiser
    def param_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups: decay on matrices/conv kernels only; no decay on norms, biases and the
        relative-position table b_nd; normaliser statistics (requires_grad False) left out."""
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            if p.dim() < 2 or name.endswith(".b_nd"):
                no_decay.append(p)
            else:
                decay.append(p)
        return [
            {"params": decay, "weight_decay": float(weight_decay)},
            {"params": no_decay, "weight_decay": 0.0},
        ]
