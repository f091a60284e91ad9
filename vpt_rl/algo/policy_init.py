"""The one setup layer for policies, shared by both trainers and the commands: the device, a
fresh policy, the frozen prior, and RL's `--init FILE` (architecture from `--model-file X.model`,
else detected from the file's shapes: `vpt_rl.model.architecture`) loaded in RL mode."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import torch

from vpt_rl.config import TrainConfig
from vpt_rl.errors import VPTRLError
from vpt_rl.model.architecture import resolve_architecture
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.vpt_config import VPTConfig
from vpt_rl.model.weights import AUX_PREFIX, LoadReport, WeightsError, load_weights, read_state_dict

__all__ = ["InitError", "PolicyInit", "build_policy", "freeze", "init_policy", "resolve_device"]


class InitError(VPTRLError, ValueError):
    """The --init / --model-file inputs cannot give a policy; the message names the file."""


def resolve_device(name: str) -> torch.device:
    """The torch device for a config value: "auto" -> cuda when available, else cpu; "cuda" or
    "cuda:N" without CUDA is an error naming the field (one rule for both trainers)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InitError(f"device={name}: CUDA is not available here (use device=cpu or auto)")
    return torch.device(name)


def build_policy(
    vpt_config: VPTConfig, aux_value_head: bool, device: torch.device | str = "cpu", seed: int | None = None
) -> VPTPolicy:
    """A fresh policy on ``device``. With ``seed`` its initialisation comes from that seed and the
    global RNG is left as it was (a BC run rebuilds the same fresh policy); without it, from the
    global RNG (the PPG trainer seeds it in one place, docs/design.md "Style" 9)."""
    if seed is None:
        return VPTPolicy(vpt_config, aux_value_head=aux_value_head).to(device)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        policy = VPTPolicy(vpt_config, aux_value_head=aux_value_head)
    finally:
        torch.random.set_rng_state(generator_state)  # no global RNG change leaks out of here
    return policy.to(device)


@dataclass
class PolicyInit:
    """What `init_policy` made: the trainable policy, the frozen prior (None without --init),
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
    config: TrainConfig,
    state_dict: dict[str, torch.Tensor] | None,
    model_file: str | os.PathLike | None,
    init_path: str | os.PathLike | None = None,
) -> tuple[VPTConfig, str]:
    """The architecture of an RL run (`resolve_architecture` with --init's shapes), errors as
    `InitError` naming the option and file."""
    shapes = None if state_dict is None else {k: tuple(v.shape) for k, v in state_dict.items()}
    try:
        arch = resolve_architecture(model_file, shapes, config.model.preset, source=f"--init {init_path}")
        return arch.config, arch.how
    except (WeightsError, ValueError) as e:
        raise InitError(f"--model-file {model_file}: {e}" if model_file is not None else str(e)) from None


def init_policy(
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
    vpt_config, how = resolve_vpt_config(config, state_dict, model_file, init_path)
    notes.append(how)
    policy = build_policy(vpt_config, aux_value_head=True)
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
