"""Tell which VPT architecture a state dict belongs to, from its key names and tensor shapes.

Weights files carry no config (docs/vpt_format.md §2), so the only evidence is the shapes. Each preset's
expected shapes come from building `VPTPolicy` on the ``meta`` device (no memory, no init cost),
so they can never drift from the real network.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch

from vpt_rl.model.weights import AUX_PREFIX

HIDSIZE_KEY = "net.lastlayer.layer.weight"  # (D, D) in every VPT network


@functools.cache
def _preset_shapes(name: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    from vpt_rl.model.policy import VPTPolicy
    from vpt_rl.model.vpt_config import VPTConfig

    with torch.device("meta"):  # shapes only: no memory, no initialisation work
        policy = VPTPolicy(VPTConfig.preset(name), aux_value_head=False)
    return tuple((k, tuple(v.shape)) for k, v in policy.state_dict().items())


def preset_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` of preset ``name``'s official state dict (no aux head), in key order."""
    return dict(_preset_shapes(name))


def preset_names() -> list[str]:
    """The presets detection compares against ("1x", "2x", "3x", "tiny")."""
    from vpt_rl.model.vpt_config import VPTConfig

    return VPTConfig.preset_names()


def _shape(shape: Any) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _differences(core: Mapping[str, tuple], expected: Mapping[str, tuple]) -> list[str]:
    diffs = [
        f"{k} expected {_shape(s)}, got {_shape(core[k])}"
        for k, s in expected.items()
        if k in core and tuple(core[k]) != s
    ]
    diffs += [f"{k} missing" for k in expected if k not in core]
    diffs += [f"{k} not in the preset" for k in core if k not in expected]
    return diffs


def detect_preset(shapes: Mapping[str, Any]) -> tuple[str | None, str]:
    """``(preset name or None, reason)`` for a ``{key: shape}`` mapping (tensors work too).

    ``aux_value_head.*`` keys are ignored (an RL checkpoint is the same architecture). A match needs
    every key and shape to equal the preset's; otherwise the reason says what matches no preset.
    """
    core = {
        k: tuple(v.shape) if isinstance(v, torch.Tensor) else tuple(v)
        for k, v in shapes.items()
        if not k.startswith(AUX_PREFIX)
    }
    if not core:
        return None, "no keys besides aux_value_head.*: not a VPT policy state dict"
    names = preset_names()
    expected = {name: preset_shapes(name) for name in names}
    for name in names:
        if expected[name] == core:
            return name, f"all {len(core)} keys and shapes match preset {name}"

    if HIDSIZE_KEY not in core:
        if HIDSIZE_KEY.removeprefix("net.") in core:
            return None, "keys look like they lack the 'net.' prefix (no net.* keys)"
        return None, f"no {HIDSIZE_KEY} key: not a VPT policy state dict"
    hidsize = core[HIDSIZE_KEY][0]
    preset_hidsize = {name: expected[name][HIDSIZE_KEY][0] for name in names}
    candidates = [name for name in names if preset_hidsize[name] == hidsize]
    if not candidates:
        known = ", ".join(f"{n}: {d}" for n, d in preset_hidsize.items())
        return None, f"hidsize {hidsize} from {HIDSIZE_KEY} matches no preset ({known})"
    diffs = {name: _differences(core, expected[name]) for name in candidates}
    closest = min(candidates, key=lambda n: len(diffs[n]))
    shown = "; ".join(diffs[closest][:3])
    more = f" (and {len(diffs[closest]) - 3} more)" if len(diffs[closest]) > 3 else ""
    return None, (
        f"hidsize {hidsize} is that of preset {closest}, but {len(diffs[closest])} keys differ: {shown}{more}"
    )
