"""Environments: voxel world, MineRL adapter, action/observation mapping, rewards, worker pool."""
