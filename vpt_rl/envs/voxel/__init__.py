"""The built-in voxel world (`vpt_rl/VoxelTreechop-v0`) and its scripted expert."""

from vpt_rl.envs.voxel.env import VoxelTreechopEnv
from vpt_rl.envs.voxel.expert import scripted_policy

__all__ = ["VoxelTreechopEnv", "scripted_policy"]
