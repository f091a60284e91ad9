"""The built-in voxel world (`vpt_rl/VoxelTreechop-v0`) and its scripted expert."""

from vpt_rl.envs.voxel.env import VoxelTreechopEnv

__all__ = ["VoxelTreechopEnv"]
