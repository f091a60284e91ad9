"""The built-in voxel world (`vpt_rl/VoxelTreechop-v0`) and its scripted expert."""
