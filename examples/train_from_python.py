"""Train a fresh tiny policy on the voxel world from Python (README.md, "Training from Python").

    python examples/train_from_python.py                  # from the repository root, ~1 minute on 2 cores
    python examples/train_from_python.py env.num_envs=4   # key=value overrides, as train_ppo.py takes
Outputs in runs/from_python (TensorBoard events, progress.csv, train.log, checkpoints/).
"""

import sys

from vpt_rl import PPGTrainer, RunDir, VPTConfig, VPTPolicy, load_config, make_pool

if __name__ == "__main__":  # the env workers start with forkserver: the entry point needs this guard
    # the defaults (configs/base.yaml: tiny policy, voxel world), a YAML layer, then overrides;
    # resolved: its "auto" fields decided for a fresh policy (no prior)
    config = load_config(["configs/treechop_tiny.yaml"], ["total_frames=4096", *sys.argv[1:]])
    config = config.resolved(has_prior=False)
    policy = VPTPolicy(VPTConfig.preset(config.model.preset))  # with the aux value head PPG trains
    env = make_pool(config.env, policy.config.img_size)  # one worker process per env
    trainer = PPGTrainer(policy, None, env, config, RunDir("runs/from_python"))  # None: no KL prior
    trainer.train()  # watch it: tensorboard --logdir runs
    # from weights and with resume, as train_ppo.py does it: vpt_rl.build_ppg_trainer(config, run_dir, ...)
    print("trained weights: runs/from_python/checkpoints/latest.weights")
