"""Train a fresh tiny policy on the voxel world from Python (README.md, "Training from Python").

    python examples/train_from_python.py                  # from the repository root, ~1 minute on 2 cores
    python examples/train_from_python.py env.num_envs=4   # key=value overrides, as train_ppo.py takes
Outputs in runs/from_python (config.yaml, TensorBoard events, progress.csv, checkpoints/).
"""

import sys

from vpt_rl import PPGTrainer, load_config

if __name__ == "__main__":  # the env workers start with forkserver: the entry point needs this guard
    # the defaults (configs/base.yaml: tiny policy, voxel world), a YAML layer, then overrides
    config = load_config(["configs/treechop_tiny.yaml"], ["total_frames=4096", *sys.argv[1:]])
    trainer = PPGTrainer(config, "runs/from_python")  # no init weights: a fresh policy, no KL prior
    trainer.train()  # watch it: tensorboard --logdir runs
    print("trained weights: runs/from_python/checkpoints/latest.weights")
