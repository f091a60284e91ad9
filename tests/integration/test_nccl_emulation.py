"""NCCL-safety on a CPU machine. NCCL serves only CUDA tensors; a default process group whose only
backend serves ``cuda`` (``backend="cuda:gloo"``) refuses CPU tensors exactly as NCCL does
("No backend type associated with device type cpu"). Under it, the package's own collective
helpers, both trainers' update steps, checkpoints and resume must run: every CPU tensor and every
pickled object goes to the gloo group beside the default one (vpt_rl/distributed.py)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vpt_rl.checkpoint import load_latest, load_rank_states
from vpt_rl.distributed import BACKEND_ENV, FORCE_ENV, global_moments, join

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "configs" / "smoke.yaml")


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    sys.path.insert(0, str(ROOT / "tests" / "unit"))
    from test_ppg_phases import _ctx, _setup

    from vpt_rl.algo.buffer import AuxBuffer
    from vpt_rl.algo.gae import normalize_advantages
    from vpt_rl.algo.phases import aux_phase, compute_advantages, explained_variance_or_none, policy_phase
    from vpt_rl.model.value_heads import ScaledValueHead

    torch.set_num_threads(1)
    dist.init_process_group("cuda:gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    res: dict = {}
    try:
        dist.all_reduce(torch.ones(1))  # the emulation is faithful: a CPU tensor is refused
        res["refused"] = False
    except RuntimeError as e:
        res["refused"] = "device type cpu" in str(e)
    d = join(rank, 2)
    # the helpers
    res["sum"] = d.sum_all(rank, 1.0)
    lin = torch.nn.Linear(3, 2)
    lin.weight.grad = torch.full((2, 3), float(rank + 1))
    d.average_gradients_(lin.parameters())
    res["grad"] = lin.weight.grad.clone()
    d.broadcast_module_(lin)
    d.check_in_sync(lin, "emulation")
    adv = torch.arange(6.0).reshape(2, 3) + rank
    res["adv"] = normalize_advantages(adv, d)
    res["ev"] = explained_variance_or_none(adv * 0.5, adv, d)
    head = ScaledValueHead(4).train()
    head.update(adv, functools.partial(global_moments, d))
    res["objects"] = (
        d.gather(rank),
        d.all_gather(rank),
        d.broadcast(rank),
        d.scatter([7, 8] if rank == 0 else None),
    )
    res["scalars"] = d.mean_scalars({"a": float(rank)})
    d.barrier()
    # PPG's update steps (policy phase, its skip vote, global advantages and value statistics,
    # explained variance; then the auxiliary phase) on real tiny-policy segments
    policy, _, roller = _setup(prior=True, n_envs=2, seed=rank)
    ctx = _ctx(policy, roller.prior_kl)
    ctx.dist = d
    d.broadcast_module_(policy)
    seg = roller.collect()
    compute_advantages(seg, ctx.cfg)
    res["policy"] = policy_phase(ctx, seg, kl_coef=0.1, ent_coef=0.0)
    aux = AuxBuffer()
    aux.add(seg, keep_last=2)
    seg2 = roller.collect()
    compute_advantages(seg2, ctx.cfg)
    aux.add(seg2, keep_last=2)
    res["aux"] = aux_phase(ctx, aux)
    d.check_in_sync(policy, "after the PPG updates")
    torch.save(res, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def test_helpers_and_ppg_updates_under_a_cuda_only_default_group(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["refused"] and r1["refused"]
    assert r0["sum"] == r1["sum"] == [1.0, 2.0]
    assert torch.equal(r0["grad"], torch.full((2, 3), 1.5))
    assert r0["objects"] == ([0, 1], [0, 1], 0, 7) and r1["objects"] == (None, [0, 1], 0, 8)
    assert r0["scalars"] == r1["scalars"] == {"a": 0.5}
    assert "train/policy_loss" in r0["policy"] and "aux/bc_kl" in r0["aux"]
    assert r0["ev"] == r1["ev"] and abs(float(r0["adv"].sum() + r1["adv"].sum())) < 1e-5  # global mean 0


def _torchrun(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def test_both_trainers_run_and_resume_under_a_cuda_only_default_group(tmp_path):
    """The documented torchrun command, its --resume, and BC under torchrun, with the default group
    refusing CPU tensors as NCCL does: no CPU tensor and no object reaches it."""
    env = {**os.environ, BACKEND_ENV: "cuda:gloo"}
    run = tmp_path / "ppg"
    args = ["train_ppo.py", "--config", SMOKE, "env.num_envs=2", "ppg.segment_len=16", "total_frames=256"]
    out = _torchrun([*args, "--runs-dir", str(tmp_path), "--run-name", "ppg", "log.progress=false"], env)
    assert "data parallel: 2 ranks x 2 envs" in out.stdout and out.stdout.count("done: 256 frames") == 1
    _torchrun(["train_ppo.py", "--resume", str(run), "total_frames=384"], env)
    state, _ = load_latest(run / "checkpoints")
    assert state["frames"] == 384 and len(load_rank_states(run / "checkpoints")) == 2

    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    from test_bc_smoke import write_demos

    demos = write_demos(tmp_path / "demos", n_episodes=6)
    bc = ["train_bc.py", "--config", str(ROOT / "configs" / "bc_smoke.yaml"), "--data", str(demos)]
    out = _torchrun([*bc, "--runs-dir", str(tmp_path), "--run-name", "bc", "total_frames=128"], env)
    assert out.stdout.count("done: 128 frames") == 1


def test_forced_process_group_for_one_process(tmp_path):
    """VPT_RL_DIST_FORCE=1: a plain `python train_ppo.py` starts a group of one, so one GPU runs
    the multi-GPU collectives (here under the CUDA-only emulation)."""
    env = {**os.environ, FORCE_ENV: "1", BACKEND_ENV: "cuda:gloo"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    cmd = [
        sys.executable,
        "train_ppo.py",
        "--config",
        SMOKE,
        "--runs-dir",
        str(tmp_path),
        "log.progress=false",
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "data parallel: 1 ranks x 2 envs" in out.stdout and "done: 64 frames" in out.stdout
