"""Behavioural cloning of a VPT policy on VPT-format demonstrations (NAME.mp4 + NAME.jsonl).

    python train_bc.py --init foundation-model-1x.weights --data demos/ [--config configs/bc.yaml]
                       [--model-file foundation-model-1x.model] [--run-name NAME] [key=value ...]
    python train_bc.py --resume runs/NAME [key=value ...]

Without --init a fresh policy of `model.preset` is trained (the log says so). The result,
runs/NAME/checkpoints/latest.weights (134 keys, the official layout), goes straight into
`python train_ppo.py --init runs/NAME/checkpoints/latest.weights`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from vpt_rl.config.bc import load_bc_config
from vpt_rl.config.lib import ConfigError, read_yaml


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="train_bc.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--init", help="weights to start from (.weights / .safetensors; 134 or 139 keys)")
    parser.add_argument(
        "--model-file", help="the .model file with the architecture (else detected from --init)"
    )
    parser.add_argument("--data", help="folder of NAME.mp4 + NAME.jsonl demonstrations (sets data.dir)")
    parser.add_argument("--config", action="append", default=[], help="YAML config layer (repeatable)")
    parser.add_argument(
        "--run-name", help="output folder name under --runs-dir (default: bc-CONFIG-TIMESTAMP)"
    )
    parser.add_argument("--runs-dir", default="runs", help="parent folder of the runs (default: runs)")
    parser.add_argument(
        "--resume", metavar="RUN_DIR", help="continue runs/NAME exactly from its latest checkpoint"
    )
    parser.add_argument(
        "overrides", nargs="*", help="dotted config overrides, e.g. bc.lr=1e-4 total_frames=20000"
    )
    return parser.parse_intermixed_args(argv)  # overrides may come before or after options


def main(argv: list[str] | None = None) -> int:
    """Parse, resolve the config, train; returns the exit status (2 on a user error)."""
    args = parse_args(argv)
    overrides = list(args.overrides)
    if args.data is not None:
        overrides.append(f"data.dir={str(Path(args.data).resolve())}")
    from vpt_rl.algo.phases import NonFiniteError
    from vpt_rl.distributed import device_override, init_distributed, on_rank0, shutdown
    from vpt_rl.errors import VPTRLError

    dist = None
    locks: list = []  # rank 0's lock on the run folder, held until this function returns
    try:
        dist, rank_device = init_distributed(device_override(overrides) or "auto")
        # rank 0 reads the files and names the run; every rank gets the same config and folder
        resolved = on_rank0(dist, lambda: _resolve(args, overrides, locks))
        config, run_dir = dist.broadcast(resolved)
        if dist.enabled:
            config.device = rank_device  # cuda:LOCAL_RANK, or cpu (gloo)

        from vpt_rl.algo.bc_build import build_bc_trainer
        from vpt_rl.perf import reuse_freed_memory

        if config.torch_threads:
            import torch

            torch.set_num_threads(config.torch_threads)  # the CLI owns the process; the library does not
        if config.perf.reuse_memory:
            reuse_freed_memory()  # glibc keeps freed tensors' memory (vpt_rl/perf.py says why)

        trainer = build_bc_trainer(
            config, run_dir, args.init, args.model_file, resume=bool(args.resume), dist=dist
        )
        trainer.train()  # prints its own summary (frames, losses, files, plot)
    except VPTRLError as e:  # a user error: its message names the problem (vpt_rl/errors.py)
        print(f"train_bc.py: error: {e}", file=sys.stderr)
        return 2
    except NonFiniteError:
        return 1  # the trainer already said why
    finally:
        if dist is not None:
            shutdown(dist)
        for lock in locks:
            lock.release()
    return 0


def _resolve(args: argparse.Namespace, overrides: list[str], locks: list) -> tuple:
    """The resolved config and the run folder (rank 0), after the folder's
    lock was taken and appended to ``locks`` (vpt_rl/run_lock.py)."""
    from vpt_rl.run_lock import lock_run_dir

    if args.resume:
        run_dir = Path(args.resume)
        if args.init or args.model_file:
            raise ConfigError("--resume continues from the run's own checkpoint; drop --init/--model-file")
        if not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"--resume {run_dir}: no config.yaml there (not a train_bc.py run folder)")
        locks.append(lock_run_dir(run_dir))
        base = read_yaml(run_dir / "config.yaml")
        # the saved stop point ended the earlier invocation; a resume continues past it
        base["stop_after_frames"] = None
        config = load_bc_config(args.config, overrides, base=base)
    else:
        config = load_bc_config(args.config, overrides)
        name = args.run_name or config.run_name
        if name is None:
            stem = Path(args.config[-1]).stem if args.config else "default"
            name = f"bc-{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        config.run_name = name
        run_dir = Path(args.runs_dir) / name
        locks.append(lock_run_dir(run_dir))
        if (run_dir / "checkpoints").exists():
            raise ConfigError(
                f"{run_dir} already has checkpoints: use --resume {run_dir} or another --run-name"
            )
    return config, run_dir  # the trainer writes config.yaml (vpt_rl/run_dir.py)


if __name__ == "__main__":
    sys.exit(main())
