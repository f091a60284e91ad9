"""Typed, strict configuration of both trainers, one module per trainer beside what they share:

- `vpt_rl.config.ppg`: `TrainConfig` of `train_ppo.py` (`load_config`, `save_config`, `read_config`);
- `vpt_rl.config.bc`: `BCConfig` of `train_bc.py` (`load_bc_config`, `save_bc_config`, `read_bc_config`);
- `vpt_rl.config.common`: the sections both use (`ModelConfig`, `CkptConfig`, `PerfConfig`);
- `vpt_rl.config.lib`: the machinery (YAML layers, dotted overrides, unknown key = `ConfigError`).

The names the package, its scripts and tests import from here are re-exported; the rest are
imported from their module.
"""

from vpt_rl.config.bc import BCConfig, load_bc_config
from vpt_rl.config.common import PerfConfig
from vpt_rl.config.lib import ConfigError
from vpt_rl.config.ppg import (
    AUTO_ENT_COEF_FRESH,
    LEARNABLE_VOXEL_KWARGS,
    EnvConfig,
    PPGConfig,
    TrainConfig,
    load_config,
    read_config,
    save_config,
)

__all__ = [
    "AUTO_ENT_COEF_FRESH",
    "LEARNABLE_VOXEL_KWARGS",
    "BCConfig",
    "ConfigError",
    "EnvConfig",
    "PPGConfig",
    "PerfConfig",
    "TrainConfig",
    "load_bc_config",
    "load_config",
    "read_config",
    "save_config",
]
