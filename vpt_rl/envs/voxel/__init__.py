"""The built-in voxel world (`vpt_rl/VoxelTreechop-v0`) and its scripted expert."""

from vpt_rl.envs.voxel.env import VoxelTreechopEnv
from vpt_rl.envs.voxel.expert import expert_returns, scripted_policy

__all__ = ["VoxelTreechopEnv", "expert_returns", "scripted_policy"]
