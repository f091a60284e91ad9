"""vpt_rl: RL fine-tuning (PPG + KL to the pretrained policy) for OpenAI's VPT Minecraft agents.

The public API is re-exported here lazily (PEP 562), so ``import vpt_rl`` stays cheap and a
user who only needs the action mapping does not pay for building torch modules. Importing the
package registers ``vpt_rl/VoxelTreechop-v0`` with gymnasium: the one side effect allowed.

Training from Python (README.md, "Training from Python"; examples/train_from_python.py): a
config (`load_config` / `load_bc_config` layer YAML files and ``key=value`` overrides into a
`TrainConfig` / `BCConfig`), then `build_ppg_trainer` / `build_bc_trainer` (the file work: weights,
`.model` files, resume) or the trainers themselves on objects (`PPGTrainer(policy, prior, env,
config, run)`). `make_env_fns` and `make_pool` build the environments as the trainers do.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "VPTConfig": "vpt_rl.model.vpt_config",
    "VPTPolicy": "vpt_rl.model.policy",
    "PolicyOutput": "vpt_rl.model.policy",
    "load_weights": "vpt_rl.model.weights",
    "save_weights": "vpt_rl.model.weights",
    "LoadReport": "vpt_rl.model.weights",
    "WeightsError": "vpt_rl.model.weights",
    "env_to_policy": "vpt_rl.envs.actions",
    "policy_to_env": "vpt_rl.envs.actions",
    "preprocess_frame": "vpt_rl.envs.obs",
    "EnvPool": "vpt_rl.envs.pool",
    "make_env_fns": "vpt_rl.envs.factory",
    "make_pool": "vpt_rl.envs.factory",
    "TrainConfig": "vpt_rl.config",
    "load_config": "vpt_rl.config",
    "save_config": "vpt_rl.config",
    "BCConfig": "vpt_rl.config",
    "load_bc_config": "vpt_rl.config",
    "PPGTrainer": "vpt_rl.algo.ppg_trainer",
    "build_ppg_trainer": "vpt_rl.algo.ppg_setup",
    "BCTrainer": "vpt_rl.algo.bc_trainer",
    "build_bc_trainer": "vpt_rl.algo.bc_build",
    "RunDir": "vpt_rl.run_dir",
    "VPTRLError": "vpt_rl.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

VOXEL_TREECHOP_ID = "vpt_rl/VoxelTreechop-v0"

if VOXEL_TREECHOP_ID not in gymnasium.registry:
    # The env enforces its own step limit (it is part of its saved state for exact resume),
    # so no gymnasium TimeLimit wrapper is added here.
    gymnasium.register(id=VOXEL_TREECHOP_ID, entry_point="vpt_rl.envs.voxel.env:VoxelTreechopEnv")


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vpt_rl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
