"""`build_bc_trainer`: the file work of a BC run, done before the trainer exists.

Rank 0 chooses what to read (a fresh policy, `--init FILE` in BC mode, or the run's newest
complete checkpoint) and writes load_report.txt; every rank builds the same architecture, starts
from rank 0's weights (broadcast), and on resume reads the checkpoint's replicated part and its own
part itself (vpt_rl/checkpoint.py). The frozen prior of the KL term is a copy of the initial policy,
kept in the run (`checkpoints/prior.weights`) so a resume needs no --init, as train_ppo.py does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vpt_rl.algo.bc_data import load_bc_data
from vpt_rl.algo.bc_setup import model_config_for
from vpt_rl.algo.bc_trainer import STATE_KIND, BCTrainer
from vpt_rl.algo.policy_init import build_policy, freeze, resolve_device
from vpt_rl.checkpoint import load_latest, load_rank_state, load_state
from vpt_rl.config.bc import BCConfig
from vpt_rl.distributed import Dist, on_rank0
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.vpt_config import VPTConfig
from vpt_rl.model.weights import load_weights, read_state_dict, save_weights
from vpt_rl.perf import apply_perf
from vpt_rl.run_dir import ResumeError, RunDir

__all__ = ["build_bc_trainer"]


def build_bc_trainer(
    config: BCConfig,
    run_dir: str | os.PathLike,
    init_path: str | os.PathLike | None = None,
    model_file: str | os.PathLike | None = None,
    resume: bool = False,
    dist: Dist | None = None,
    log: Any = print,
) -> BCTrainer:
    """A `BCTrainer` ready to `train()` (module docstring); ``log`` prints the setup lines."""
    dist = dist or Dist()
    run = RunDir(run_dir, is_main=dist.is_main, echo=log)
    device = resolve_device(config.device)
    saved, rank_part = _read_checkpoint(run, dist) if resume else (None, None)
    if saved is not None:
        # the run holds its own architecture and prior, so --resume needs no --init
        vpt, how = VPTConfig.from_model_kwargs(*saved["vpt_config"]), "architecture from the run"
    else:
        vpt, how = model_config_for(
            None if init_path is None else str(init_path), None if model_file is None else str(model_file),
            config.model.preset,
        )  # fmt: skip
    policy = build_policy(vpt, aux_value_head=False, device=device, seed=config.seed)
    run.log(how)
    if saved is not None:
        report = load_weights(policy, saved["weights"], mode="bc", source=str(saved["weights_path"]))
        run.log(f"resuming {run.path} at {saved['frames']} frames\n{report}")
    elif init_path is None:
        text = (
            "no --init: training a fresh policy from random initialisation "
            f"(preset {config.model.preset}, seed {config.seed})"
        )
        run.log(text)
        run.write_load_report(text)
    else:
        report = load_weights(policy, str(init_path), mode="bc")
        run.log(str(report))
        run.write_load_report(report.to_text())
    dist.broadcast_module_(policy)  # every rank starts from rank 0's weights
    prior = (
        _prior(policy, vpt, config, run, dist, resumed=saved is not None) if config.bc.kl_coef > 0 else None
    )
    run.log(apply_perf((policy, prior), config.perf, device))
    data = load_bc_data(config, policy.config.img_size, dist, run.log)
    run.log(data.describe(config.data.dir, config.data.drop_null))
    trainer = BCTrainer(policy, prior, data, config, run, dist)
    if saved is not None and rank_part is not None:
        trainer.load_state_dict(saved, rank_part)
    return trainer


def _read_checkpoint(run: RunDir, dist: Dist) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's replicated training state (with its weights) and this rank's part: rank 0 picks
    the newest complete checkpoint and checks it; each rank reads the files itself."""

    def pick() -> str:
        saved, _ = load_latest(run.ckpt_dir)
        if saved.get("kind") != STATE_KIND:
            raise ResumeError(f"{run.ckpt_dir}: not a BC run (its training state is not from train_bc.py)")
        run.check_world_size(int(saved.get("world_size", 1)), dist.world_size)
        return str(saved["step"])

    step = dist.broadcast(on_rank0(dist, pick))
    saved = load_state(run.ckpt_dir / f"{step}.state.pt")
    saved["weights_path"] = run.ckpt_dir / saved["weights_file"]
    saved["weights"] = read_state_dict(saved["weights_path"])
    return saved, load_rank_state(run.ckpt_dir, step, dist.rank)


def _prior(
    policy: VPTPolicy, vpt: VPTConfig, config: BCConfig, run: RunDir, dist: Dist, resumed: bool
) -> VPTPolicy:
    # why: the KL anchor is the policy training started from, frozen (docs/design.md "Decisions")
    path: Path = run.ckpt_dir / "prior.weights"
    if resumed and dist.is_main and not path.is_file():
        raise ResumeError(f"bc.kl_coef > 0 on resume, but {path} is missing (the run had kl_coef 0)")
    prior = build_policy(vpt, aux_value_head=False, device=next(policy.parameters()).device, seed=config.seed)
    if resumed:
        if dist.is_main:
            load_weights(prior, str(path), mode="bc")
        dist.broadcast_module_(prior)
    else:
        prior.load_state_dict(policy.state_dict())
        if dist.is_main:
            save_weights(prior, path, include_aux=False)
        run.log(f"prior: frozen copy of the initial policy, KL coefficient {config.bc.kl_coef}")
    return freeze(prior)
