#!/usr/bin/env python
"""Train a VPT policy with PPG and a KL penalty toward the starting policy.

    python train_ppo.py                                   # short demo run on the built-in defaults
    python train_ppo.py --init foundation-model-1x.weights --config configs/vpt_diamond.yaml
    python train_ppo.py --config configs/treechop_tiny.yaml ppg.lr=1e-4 env.num_envs=8
    python train_ppo.py --resume runs/NAME [total_frames=2000000]
    torchrun --nproc_per_node 4 train_ppo.py ...           # data parallel: 4 processes (GPUs)

CLI only: parse -> load_config -> build -> trainer.train(). Outputs in runs/NAME (config.yaml,
TensorBoard events, checkpoints/, load_report.txt); watch with `tensorboard --logdir runs`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

USAGE_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train_ppo.py",
        description="PPG (PPO policy phase + auxiliary phase) with KL to the frozen starting policy.",
        epilog="Overrides are dotted key=value pairs, e.g. ppg.lr=2e-5 env.num_envs=8 (see configs/base.yaml).",
    )
    p.add_argument(
        "--init", metavar="PATH", help="weights to start from (134-key foundation/BC or 139-key RL)"
    )
    p.add_argument("--model-file", metavar="X.model", help="official .model file giving the architecture")
    p.add_argument("--config", metavar="FILE", action="append", default=[], help="YAML layer (repeatable)")
    p.add_argument("--run-name", metavar="NAME", help="output folder runs/NAME (default: config name + time)")
    p.add_argument("--runs-dir", metavar="DIR", default="runs", help="parent folder of runs (default: runs)")
    p.add_argument(
        "--resume", metavar="RUN_DIR", help="continue runs/NAME exactly from its latest checkpoint"
    )
    p.add_argument("--device", help="cpu | cuda | cuda:N | auto (same as device=...)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_intermixed_args(argv)
    # Imports after parsing so --help is instant.
    import torch

    from vpt_rl.algo.ppg_setup import build_ppg_trainer
    from vpt_rl.algo.ppg_trainer import NonFiniteError
    from vpt_rl.config import ConfigError, load_config
    from vpt_rl.config.lib import read_yaml
    from vpt_rl.distributed import device_override, init_distributed, on_rank0, shutdown
    from vpt_rl.errors import VPTRLError
    from vpt_rl.perf import reuse_freed_memory

    overrides = list(args.overrides) + ([f"device={args.device}"] if args.device else [])
    dist = None
    locks: list = []  # rank 0's lock on the run folder, held until this function returns
    try:
        # torchrun: join the job first (a plain `python train_ppo.py` is rank 0 of 1)
        device_arg = args.device or device_override(args.overrides) or "auto"
        dist, rank_device = init_distributed(device_arg)
        # rank 0 reads the files and names the run; every rank gets the same config and folder
        resolved = on_rank0(
            dist, lambda: _resolve(args, overrides, load_config, read_yaml, ConfigError, locks)
        )
        config, run_dir = dist.broadcast(resolved)
        if dist.enabled:
            config.device = rank_device  # cuda:LOCAL_RANK, or cpu (gloo)
        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)  # the CLI owns the process; the library does not
        if config.perf.reuse_memory:
            reuse_freed_memory()  # glibc keeps freed tensors' memory (vpt_rl/perf.py says why)
        trainer = build_ppg_trainer(
            config,
            run_dir,
            init_path=args.init,
            model_file=args.model_file,
            resume=bool(args.resume),
            dist=dist,
        )
        trainer.train()
    except VPTRLError as e:  # a user error: its message names the problem (vpt_rl/errors.py)
        print(f"train_ppo.py: error: {e}", file=sys.stderr)
        return USAGE_ERROR
    except NonFiniteError:
        return 1  # the trainer already said why
    except KeyboardInterrupt:
        print("train_ppo.py: interrupted; resume with --resume from the last checkpoint", file=sys.stderr)
        return 130
    finally:
        if dist is not None:
            shutdown(dist)
        for lock in locks:
            lock.release()
    return 0


def _resolve(args, overrides, load_config, read_yaml, ConfigError, locks):
    """The resolved config and the run folder (rank 0: reads the files, checks the folder), whose
    lock is appended to ``locks`` before anything is written there (vpt_rl/run_lock.py)."""
    from vpt_rl.run_lock import lock_run_dir

    if args.resume:
        if args.config or args.init or args.model_file or args.run_name:
            raise ConfigError(
                "--resume takes only key=value overrides (and --device); the run keeps its config"
            )
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"--resume {run_dir}: no config.yaml there (not a train_ppo.py run folder)")
        locks.append(lock_run_dir(run_dir))
        return load_config([], overrides, base=read_yaml(run_dir / "config.yaml")), run_dir
    if args.model_file and not args.init:
        raise ConfigError("--model-file needs --init (it gives the architecture of those weights)")
    config = load_config(args.config, overrides)
    if args.run_name:
        config.run_name = args.run_name
    if config.run_name is None:
        stem = Path(args.config[-1]).stem if args.config else "base"
        config.run_name = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(args.runs_dir) / config.run_name
    locks.append(lock_run_dir(run_dir))
    if (run_dir / "checkpoints" / "latest.json").exists():
        raise ConfigError(f"{run_dir} already holds a run: use --resume {run_dir} or another --run-name")
    return config, run_dir


if __name__ == "__main__":
    sys.exit(main())
