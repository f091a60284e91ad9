"""`VPTConfig`: the VPT network architecture, with fields named exactly like the released kwargs.

The released `.model` files carry `policy_kwargs` (the `MinecraftPolicy` arguments) and
`pi_head_kwargs` (`{"temperature": ...}`); docs/vpt_format.md §1.2-1.4. `VPTConfig` holds both in one flat
dataclass, validates them, and converts back (`to_model_kwargs`). Presets live in code (docs/design.md "Decisions").
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

# Kwargs every released model shares (docs/vpt_format.md §1.3), without the per-model ones.
_SHARED_KWARGS: dict[str, Any] = {
    "recurrence_type": "transformer",
    "n_recurrence_layers": 4,
    "attention_mask_style": "clipped_causal",
    "attention_memory_size": 256,
    "timesteps": 128,
    "use_pointwise_layer": True,
    "pointwise_ratio": 4,
    "pointwise_use_activation": False,
    "recurrence_is_residual": True,
    "use_pre_lstm_ln": False,
    "img_shape": (128, 128, 3),
    "impala_chans": (16, 32, 32),
    "impala_kwargs": {"post_pool_groups": 1},
    "init_norm_kwargs": {"batch_norm": False, "group_norm_groups": 1},
    "diff_mlp_embedding": False,
    "only_img_input": True,
}

# Per-model kwargs and the temperature of the matching `.model` file (docs/vpt_format.md §1.4; 2x's
# temperature is inferred, see the caveat there). "tiny" is `manifest_tiny.json`'s test config.
_PRESETS: dict[str, dict[str, Any]] = {
    "1x": {**_SHARED_KWARGS, "hidsize": 1024, "impala_width": 4, "attention_heads": 8, "temperature": 1.0},
    "2x": {**_SHARED_KWARGS, "hidsize": 2048, "impala_width": 8, "attention_heads": 16, "temperature": 2.0},
    "3x": {**_SHARED_KWARGS, "hidsize": 3072, "impala_width": 12, "attention_heads": 24, "temperature": 3.0},
    "tiny": {
        **_SHARED_KWARGS,
        "n_recurrence_layers": 2,
        "attention_memory_size": 16,
        "timesteps": 8,
        "img_shape": (32, 32, 3),
        "impala_chans": (4, 8, 8),
        "hidsize": 64,
        "impala_width": 1,
        "attention_heads": 4,
        "temperature": 2.0,
    },
}
_RELEASED = ("1x", "2x", "3x")

# Present in every released file, read by nothing in the network (docs/vpt_format.md §1.3).
_IGNORED_KWARGS = ("active_reward_monitors",)
_RELEASED_ACTIVE_REWARD_MONITORS = {"env_reward": 1}


@dataclasses.dataclass
class VPTConfig:
    """Architecture of a VPT policy (`MinecraftPolicy` kwargs, docs/vpt_format.md §1.3-1.4) plus the
    policy-head temperature. Only the released transformer architecture family is supported;
    the constructor rejects values that would need other code paths."""

    recurrence_type: str  # only "transformer"
    n_recurrence_layers: int  # transformer blocks L
    attention_mask_style: str  # only "clipped_causal"
    attention_memory_size: int  # M + timesteps
    timesteps: int  # training chunk length of the original run; matters only through M
    use_pointwise_layer: bool  # must be True (mlp0/mlp1 in every block)
    pointwise_ratio: int  # MLP width multiplier (mlp0: D -> ratio*D)
    pointwise_use_activation: bool  # must be False (no activation after mlp1)
    recurrence_is_residual: bool  # must be True
    use_pre_lstm_ln: bool  # must be False (no `pre_lstm_ln` module)
    img_shape: tuple[int, int, int]  # (H, W, 3) of the policy input
    impala_chans: tuple[int, ...]  # base channels per IMPALA stack, multiplied by impala_width
    impala_width: int
    impala_kwargs: dict[str, Any]  # {"post_pool_groups": g}
    init_norm_kwargs: dict[str, Any]  # {"batch_norm": False, "group_norm_groups": g}
    hidsize: int  # D
    attention_heads: int  # H (head size d = D/H)
    diff_mlp_embedding: bool  # must be False
    only_img_input: bool  # must be True
    temperature: float  # pi_head temperature: log_softmax(logits / temperature)

    def __post_init__(self) -> None:
        for name in ("img_shape", "impala_chans"):
            if not isinstance(getattr(self, name), (list, tuple)):
                raise ValueError(f"VPTConfig.{name}={getattr(self, name)!r}: must be a list of ints")
            setattr(self, name, tuple(getattr(self, name)))
        for name in ("impala_kwargs", "init_norm_kwargs"):
            if not isinstance(getattr(self, name), Mapping):
                raise ValueError(f"VPTConfig.{name}={getattr(self, name)!r}: must be a mapping")
            setattr(self, name, dict(getattr(self, name)))
        if isinstance(self.temperature, int) and not isinstance(self.temperature, bool):
            self.temperature = float(self.temperature)  # the loaders convert it (docs/vpt_format.md §1.2)
        self._validate()

    # ----------------------------------------------------------------- validation
    def _validate(self) -> None:
        def need(ok: bool, field: str, msg: str) -> None:
            if not ok:
                raise ValueError(f"VPTConfig.{field}={getattr(self, field)!r}: {msg}")

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        for name in ("n_recurrence_layers", "attention_memory_size", "timesteps", "pointwise_ratio"):
            need(is_int(getattr(self, name)) and getattr(self, name) >= 1, name, "must be an int >= 1")
        for name in ("impala_width", "hidsize", "attention_heads"):
            need(is_int(getattr(self, name)) and getattr(self, name) >= 1, name, "must be an int >= 1")
        need(self.recurrence_type == "transformer", "recurrence_type", "only 'transformer' is supported")
        need(
            self.attention_mask_style == "clipped_causal",
            "attention_mask_style",
            "only 'clipped_causal' is supported",
        )
        need(
            self.attention_memory_size > self.timesteps,
            "attention_memory_size",
            f"must exceed timesteps={self.timesteps} (memory M = attention_memory_size - timesteps >= 1)",
        )
        for name, value in (
            ("use_pointwise_layer", True),
            ("pointwise_use_activation", False),
            ("recurrence_is_residual", True),
            ("use_pre_lstm_ln", False),
            ("diff_mlp_embedding", False),
            ("only_img_input", True),
        ):
            need(
                getattr(self, name) is value, name, f"only {value} is supported (as in every released model)"
            )
        need(
            len(self.img_shape) == 3 and all(is_int(s) and s >= 1 for s in self.img_shape),
            "img_shape",
            "must be 3 positive ints (H, W, 3)",
        )
        need(self.img_shape[2] == 3, "img_shape", "the last dimension must be 3 (RGB)")
        need(
            len(self.impala_chans) >= 1 and all(is_int(c) and c >= 1 for c in self.impala_chans),
            "impala_chans",
            "must be a non-empty list of positive ints",
        )
        need(
            set(self.impala_kwargs) == {"post_pool_groups"},
            "impala_kwargs",
            "must be {'post_pool_groups': g}",
        )
        need(
            set(self.init_norm_kwargs) == {"batch_norm", "group_norm_groups"},
            "init_norm_kwargs",
            "must be {'batch_norm': False, 'group_norm_groups': g}",
        )
        need(
            self.init_norm_kwargs["batch_norm"] is False,
            "init_norm_kwargs",
            "batch_norm=True is not supported",
        )
        for field, key in (("impala_kwargs", "post_pool_groups"), ("init_norm_kwargs", "group_norm_groups")):
            groups = getattr(self, field)[key]
            need(is_int(groups) and groups >= 1, field, f"{key} must be an int >= 1")
            chans = [c * self.impala_width for c in self.impala_chans]
            if field == "init_norm_kwargs":
                chans = chans[:-1]  # GroupNorm inputs of stacks 1.. plus every block conv
            need(
                all(c % groups == 0 for c in chans),
                field,
                f"{key}={groups} must divide the CNN channels {chans}",
            )
        need(
            self.hidsize % self.attention_heads == 0,
            "hidsize",
            f"must be divisible by attention_heads={self.attention_heads}",
        )
        need(
            isinstance(self.temperature, float) and math.isfinite(self.temperature) and self.temperature > 0,
            "temperature",
            "must be a finite float > 0",
        )

    # ----------------------------------------------------------------- derived values
    @property
    def memory_size(self) -> int:
        """M = attention_memory_size - timesteps: frames kept in each block's K/V cache (docs/vpt_format.md §3.3)."""
        return self.attention_memory_size - self.timesteps

    @property
    def img_size(self) -> tuple[int, int]:
        """(H, W) of the policy's input frames."""
        return (self.img_shape[0], self.img_shape[1])

    @property
    def cnn_chans(self) -> tuple[int, ...]:
        """Output channels of each IMPALA stack (impala_chans * impala_width)."""
        return tuple(c * self.impala_width for c in self.impala_chans)

    @property
    def head_size(self) -> int:
        """d = hidsize / attention_heads."""
        return self.hidsize // self.attention_heads

    # ----------------------------------------------------------------- constructors
    @staticmethod
    def preset_names() -> list[str]:
        """Names accepted by `preset`."""
        return list(_PRESETS)

    @classmethod
    def preset(cls, name: str) -> VPTConfig:
        """Released architectures "1x", "2x", "3x" (temperatures 1, 2, 3; docs/vpt_format.md §1.4) or "tiny"
        (`manifest_tiny.json`, temperature 2) for tests."""
        if name not in _PRESETS:
            raise ValueError(f"unknown VPT preset {name!r}; valid presets: {', '.join(_PRESETS)}")
        return cls(**_PRESETS[name])

    @classmethod
    def from_model_kwargs(
        cls, policy_kwargs: Mapping[str, Any], pi_head_kwargs: Mapping[str, Any] | None = None
    ) -> VPTConfig:
        """Build from a `.model` file's `policy_kwargs` and `pi_head_kwargs`.

        Accepts exactly the released kwargs (`active_reward_monitors` is accepted and ignored);
        unknown or missing keys raise ValueError naming them. Without `pi_head_kwargs` the
        temperature is that of the released architecture the kwargs match (docs/vpt_format.md §1.4: it differs
        per file, so a silent default of 2 would be wrong for 1x).
        """
        arch_fields = [f.name for f in dataclasses.fields(cls) if f.name != "temperature"]
        unknown = sorted(set(policy_kwargs) - set(arch_fields) - set(_IGNORED_KWARGS))
        if unknown:
            raise ValueError(
                f"unknown policy_kwargs key(s): {', '.join(unknown)} (accepted: {', '.join(arch_fields)}, "
                f"{', '.join(_IGNORED_KWARGS)})"
            )
        missing = [k for k in arch_fields if k not in policy_kwargs]
        if missing:
            raise ValueError(f"policy_kwargs is missing key(s): {', '.join(missing)}")
        arch = {k: policy_kwargs[k] for k in arch_fields}
        if pi_head_kwargs is not None:
            extra = sorted(set(pi_head_kwargs) - {"temperature"})
            if extra or "temperature" not in pi_head_kwargs:
                raise ValueError(
                    f"pi_head_kwargs must be exactly {{'temperature': float}}, got keys {sorted(pi_head_kwargs)}"
                )
            try:
                temperature = float(pi_head_kwargs["temperature"])
            except (TypeError, ValueError) as e:
                raise ValueError(
                    f"pi_head_kwargs['temperature']={pi_head_kwargs['temperature']!r} is not a number"
                ) from e
            return cls(**arch, temperature=temperature)
        candidate = cls(**arch, temperature=1.0)  # validates the architecture first
        for name in _RELEASED:
            released = cls.preset(name)
            if dataclasses.replace(released, temperature=1.0) == candidate:
                return released
        raise ValueError(
            "policy_kwargs match none of the released architectures "
            f"({', '.join(_RELEASED)}), so the temperature is unknown: pass pi_head_kwargs={{'temperature': ...}}"
        )

    def to_model_kwargs(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(policy_kwargs, pi_head_kwargs) as a released `.model` file holds them (lists, not
        tuples; `active_reward_monitors` as in every released file)."""
        policy_kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "temperature":
                continue
            value = getattr(self, f.name)
            policy_kwargs[f.name] = (
                list(value)
                if isinstance(value, tuple)
                else (dict(value) if isinstance(value, dict) else value)
            )
        policy_kwargs["active_reward_monitors"] = dict(_RELEASED_ACTIVE_REWARD_MONITORS)
        return policy_kwargs, {"temperature": float(self.temperature)}
