"""`vpt_rl.distributed.Dist` helpers in 2 real gloo processes: gradient averaging, global
statistics (advantages, value normaliser, explained variance, logged scalars), object
collectives, and the replica check that catches parameters out of sync. One process: identity."""

from __future__ import annotations

import functools

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vpt_rl.algo.gae import normalize_advantages
from vpt_rl.algo.phases import explained_variance_or_none
from vpt_rl.distributed import Dist, DistributedError, global_moments
from vpt_rl.model.value_heads import ScaledValueHead


def _data(rank: int):
    g = torch.Generator().manual_seed(rank)
    return torch.randn(3, 5, generator=g) * (rank + 1) + rank, torch.randn(3, 5, generator=g)


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    d = Dist(rank=rank, world_size=2)
    res = {}
    # gradients: the mean over ranks, for every parameter that has one
    lin = torch.nn.Linear(3, 2)
    torch.manual_seed(0)
    lin.weight.grad = torch.full((2, 3), float(rank + 1))
    lin.bias.grad = None
    d.average_gradients_(lin.parameters())
    res["grad"] = lin.weight.grad.clone()
    res["bias_grad"] = lin.bias.grad
    # global statistics from local halves
    adv, ret = _data(rank)
    res["adv"] = normalize_advantages(adv, d)
    res["ev"] = explained_variance_or_none(ret * 0.5, ret, d)
    head = ScaledValueHead(4).train()
    head.update(ret, functools.partial(global_moments, d))
    res["norm"] = [p.clone() for p in head.normalizer.parameters()]
    res["scalars"] = d.mean_scalars(
        {"a": rank, "n": 1.0, **({"only0": 5.0} if rank == 0 else {})}, summed=["n"]
    )
    res["gather"] = d.gather(f"r{rank}")
    res["bcast"] = d.broadcast(f"from {rank}")
    res["scatter"] = d.scatter([10, 11] if rank == 0 else None)
    # replicas: equal after broadcast, an error once one rank's parameters move
    d.broadcast_module_(lin)
    d.check_in_sync(lin, "after broadcast")
    if rank == 1:
        with torch.no_grad():
            lin.bias.add_(1e-6)
    try:
        d.check_in_sync(lin, "after a one-rank change")
        res["sync_error"] = None
    except DistributedError as e:
        res["sync_error"] = str(e)
    torch.save(res, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def test_helpers_over_two_gloo_processes(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert torch.equal(r0["grad"], torch.full((2, 3), 1.5)) and torch.equal(r1["grad"], r0["grad"])
    assert r0["bias_grad"] is None
    # the global batch = both halves, as one process would see it
    (a0, t0), (a1, t1) = _data(0), _data(1)
    torch.testing.assert_close(
        torch.cat([r0["adv"], r1["adv"]]), normalize_advantages(torch.cat([a0, a1])), atol=1e-5, rtol=0
    )
    ev = explained_variance_or_none(torch.cat([t0, t1]) * 0.5, torch.cat([t0, t1]))
    assert r0["ev"] == r1["ev"] and abs(r0["ev"] - ev) < 1e-9
    ref = ScaledValueHead(4).train()
    ref.update(torch.cat([t0, t1]))
    for got0, got1, want in zip(r0["norm"], r1["norm"], ref.normalizer.parameters()):
        assert torch.equal(got0, got1)
        torch.testing.assert_close(got0, want, rtol=1e-6, atol=1e-12)
    assert r0["scalars"] == r1["scalars"] == {"a": 0.5, "n": 2.0, "only0": 5.0}
    assert r0["gather"] == ["r0", "r1"] and r1["gather"] is None
    assert r0["bcast"] == r1["bcast"] == "from 0"
    assert (r0["scatter"], r1["scatter"]) == (10, 11)
    assert r0["sync_error"] == r1["sync_error"] and "rank 1 differ from rank 0" in r0["sync_error"]


def test_one_process_is_the_identity():
    d = Dist()
    assert not d.enabled and d.is_main
    x = torch.ones(3)
    assert d.all_reduce_sum_(x) is x and d.sum_all(1.0, 2.0) == [1.0, 2.0]
    assert d.mean_scalars({"a": 1.0}) == {"a": 1.0} and d.gather(3) == [3] and d.broadcast(4) == 4
    assert d.scatter([5]) == 5


def test_one_rank_statistics_are_the_single_process_formulas_bit_for_bit():
    """One formula for any number of ranks (docs/design.md "Style" 15): through `Dist()` the
    advantage normalisation, the value normaliser's moments and the explained variance equal
    the plain single-process formulas exactly (float32; SB3's explained variance)."""
    from stable_baselines3.common.utils import explained_variance

    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(4, 33, generator=g) * (seed + 1) + seed
        pred = x + torch.randn(4, 33, generator=g)
        plain = (x - x.mean()) / (x.std(unbiased=False) + 1e-8)
        assert torch.equal(normalize_advantages(x, Dist()), plain)
        mean, mean_sq = global_moments(Dist(), x)
        assert torch.equal(mean, x.mean()) and torch.equal(mean_sq, (x**2).mean())
        sb3 = explained_variance(pred.flatten().double().numpy(), x.flatten().double().numpy())
        assert explained_variance_or_none(pred, x, Dist()) == float(sb3)
