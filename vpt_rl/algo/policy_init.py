"""Build the policy to train and the frozen prior: a fresh preset, or `--init FILE` (architecture
detected from the file's shapes, or given by `--model-file X.model`) loaded in RL mode."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import torch

from vpt_rl.config import TrainConfig
from vpt_rl.errors import VPTRLError
from vpt_rl.model.config import VPTConfig
from vpt_rl.model.detect import detect_preset
from vpt_rl.model.model_file import read_model_file
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.weights import AUX_PREFIX, LoadReport, WeightsError, load_weights, read_state_dict

__all__ = ["InitError", "PolicyInit", "build_policy", "freeze", "resolve_vpt_config"]


class InitError(VPTRLError, ValueError):
    """The --init / --model-file inputs cannot give a policy; the message names the file."""


@dataclass
class PolicyInit:
    """What `build_policy` made: the trainable policy, the frozen prior (None without --init),
    the loader's report, and human-readable notes for the log."""

    policy: VPTPolicy
    prior: VPTPolicy | None
    report: LoadReport | None
    notes: list[str]


def freeze(policy: VPTPolicy) -> VPTPolicy:
    """Eval mode, no gradients: the prior never trains and never updates its value statistics."""
    policy.eval()
    policy.requires_grad_(False)
    return policy


def resolve_vpt_config(
    config: TrainConfig, state_dict: dict[str, torch.Tensor] | None, model_file: str | os.PathLike | None
) -> tuple[VPTConfig, str]:
    """The architecture: --model-file kwargs, else detected from the weights' shapes, else the
    configured preset. Returns (VPTConfig, how it was chosen)."""
    if model_file is not None:
        try:
            policy_kwargs, pi_head_kwargs = read_model_file(model_file)
            return VPTConfig.from_model_kwargs(
                policy_kwargs, pi_head_kwargs
            ), f"architecture from {model_file}"
        except (WeightsError, ValueError) as e:
            raise InitError(f"--model-file {model_file}: {e}") from None
    if state_dict is not None:
        name, reason = detect_preset({k: tuple(v.shape) for k, v in state_dict.items()})
        if name is None:
            raise InitError(
                f"cannot tell the architecture from the weights ({reason}); pass --model-file X.model"
            )
        return VPTConfig.preset(name), f"architecture detected from the weights: preset {name} ({reason})"
    return VPTConfig.preset(
        config.model.preset
    ), f"fresh policy of preset {config.model.preset} (model.preset)"


def build_policy(
    config: TrainConfig,
    init_path: str | os.PathLike | None = None,
    model_file: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
) -> PolicyInit:
    """The policy (with aux value head) and its prior.

    With ``init_path``: strict RL-mode load (a 134-key foundation/BC file gets a fresh aux head,
    reported); ``ppg.zero_init_value`` "auto" zeroes the true value head and resets its
    normaliser exactly when the file has no aux head (its value head was not trained for this
    reward; docs/design.md "Decisions"); the prior is a frozen copy of the loaded policy. Without it:
    a fresh policy of ``model.preset`` and no prior.
    """
    notes: list[str] = []
    state_dict = None
    if init_path is not None:
        try:
            state_dict = read_state_dict(init_path)
        except (WeightsError, OSError) as e:
            raise InitError(f"--init {init_path}: {e}") from None
    vpt_config, how = resolve_vpt_config(config, state_dict, model_file)
    notes.append(how)
    policy = VPTPolicy(vpt_config, aux_value_head=True)
    if state_dict is None:
        notes.append("no --init: fresh policy, no prior, KL coefficient rho = 0")
        return PolicyInit(policy.to(device), None, None, notes)
    has_aux = any(k.startswith(AUX_PREFIX) for k in state_dict)
    zero = config.ppg.zero_init_value
    zero_value = (not has_aux) if zero == "auto" else bool(zero)
    try:
        report = load_weights(
            policy, state_dict, mode="rl", zero_value_head=zero_value, source=str(init_path)
        )
    except WeightsError as e:
        raise InitError(f"--init: {e}") from None
    notes.append(f"loaded {init_path}: {len(report.loaded)} keys, {len(report.initialized)} initialized")
    if zero_value:
        notes.append("true value head zeroed and its normaliser reset (ppg.zero_init_value)")
    policy.to(device)
    prior = freeze(copy.deepcopy(policy))
    notes.append(f"prior: frozen copy of the initial policy, KL coefficient rho = {config.ppg.kl_coef}")
    return PolicyInit(policy, prior, report, notes)
