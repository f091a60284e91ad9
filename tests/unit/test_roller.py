"""Roller on an in-process fake vector env (EnvPool's API): segment layout and `first` flags,
log-prob recompute from the stored start state (ratio 1 to 1e-5), the truncation bootstrap from
V(final obs) with the env's memory, and the prior's own memory carried across segments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vpt_rl.algo.ppg_setup import sampler_seed
from vpt_rl.algo.prior_kl import PriorKL
from vpt_rl.algo.roller import Roller
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.state import state_select
from vpt_rl.model.vpt_config import VPTConfig

H = W = 32


class FakeVecEnv:
    """N envs with scripted episode ends: env i's episode ends every ``4 + i`` steps, by
    termination in even episodes and truncation in odd ones. Frames are pseudo-random per
    (env, episode, step). Same-step autoreset with ``infos["final_obs"]``, like EnvPool."""

    def __init__(self, num_envs: int) -> None:
        self.num_envs = num_envs
        self.step_in_ep = np.zeros(num_envs, dtype=int)
        self.episode = np.zeros(num_envs, dtype=int)
        self.final_obs_log: list[tuple[int, np.ndarray]] = []

    def _frame(self, i: int) -> np.ndarray:
        rng = np.random.default_rng([i, int(self.episode[i]), int(self.step_in_ep[i])])
        return rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)

    def _obs(self) -> dict:
        return {"img": np.stack([self._frame(i) for i in range(self.num_envs)])}

    def reset(self, seed=None):
        self.step_in_ep[:] = 0
        return self._obs(), {}

    def step(self, actions):
        assert actions["buttons"].shape == (self.num_envs,) and actions["camera"].shape == (self.num_envs,)
        self.step_in_ep += 1
        reward = actions["camera"].astype(np.float64) / 100.0
        ended = self.step_in_ep >= 4 + np.arange(self.num_envs)
        term = ended & (self.episode % 2 == 0)
        trunc = ended & (self.episode % 2 == 1)
        infos = {"final_obs": np.full(self.num_envs, None, dtype=object), "_final_obs": ended.copy()}
        for i in np.flatnonzero(ended):
            final = {"img": self._frame(i)}
            infos["final_obs"][i] = final
            self.final_obs_log.append((i, final["img"]))
            self.episode[i] += 1
            self.step_in_ep[i] = 0
        return self._obs(), reward, term, trunc, infos


def _policy(seed: int) -> VPTPolicy:
    torch.manual_seed(seed)
    return VPTPolicy(VPTConfig.preset("tiny"))


def _samplers(n: int, seed: int = 0) -> list[torch.Generator]:
    """One action sampler per env, seeded as the trainer seeds them."""
    return [torch.Generator().manual_seed(sampler_seed(seed, i)) for i in range(n)]


@pytest.fixture(scope="module")
def rollout():
    torch.set_num_threads(1)
    env = FakeVecEnv(3)
    policy, prior = _policy(0), _policy(1).eval()
    roller = Roller(
        env,
        policy,
        segment_len=7,
        device=torch.device("cpu"),
        samplers=_samplers(3),
        prior_kl=PriorKL(prior, "fp32"),
    )
    roller.start(env.reset()[0])
    segs = [roller.collect(), roller.collect()]
    return policy, prior, segs, env


def test_segment_layout_and_first_flags(rollout):
    _, _, (s1, s2), _ = rollout
    assert s1.img_bthwc.shape == (3, 7, H, W, 3) and s1.img_bthwc.dtype == torch.uint8
    assert s1.first_bt[:, 0].all()  # fresh episodes at the start
    ended = s1.terminated_bt | s1.truncated_bt
    # first at t+1 exactly where the episode ended at t (same-step autoreset)
    assert torch.equal(s1.first_bt[:, 1:], ended[:, :-1])
    assert torch.equal(s2.first_bt[:, 0], ended[:, -1])
    assert (
        ended[0, 3] and s1.terminated_bt[0, 3] and s1.truncated_bt[0].sum() == 0
    )  # env 0: 4 steps, then 4 more
    assert s1.action["buttons"].dtype == torch.int64


def _recompute(policy, seg):
    with torch.no_grad():
        out, _ = policy(seg.img_bthwc, seg.first_bt, seg.state0)
    return policy.logprob(out.logprobs, seg.action), policy.value_head.denormalize(out.vpred)


def test_logprob_recompute_from_start_state_gives_ratio_one(rollout):
    policy, _, segs, _ = rollout
    for seg in segs:  # the second segment starts from a carried (non-empty) memory
        logprob, value = _recompute(policy, seg)
        ratio = (logprob - seg.logprob_bt).exp()
        torch.testing.assert_close(ratio, torch.ones_like(ratio), atol=1e-5, rtol=0)
        torch.testing.assert_close(value, seg.vpred_bt, atol=1e-5, rtol=1e-5)


def test_recompute_fails_from_a_wrong_start_state(rollout):
    policy, _, (_, s2), _ = rollout
    wrong = s2.__class__(**{**s2.__dict__, "state0": policy.initial_state(3)})
    logprob, _ = _recompute(policy, wrong)
    # rows without a reset at t=0 see a different memory -> different log-probs
    carried = ~s2.first_bt[:, 0]
    assert carried.any()
    assert (logprob[carried] - s2.logprob_bt[carried]).abs().max() > 1e-4


def test_truncation_bootstrap_uses_final_obs_value_from_env_memory(rollout):
    policy, _, (s1, s2), env = rollout
    boot = s1.truncated_bt & ~s1.terminated_bt
    assert not boot.any() and (s1.final_value_bt == 0).all()
    rows, steps = torch.nonzero(s2.truncated_bt, as_tuple=True)
    assert len(rows) > 0
    assert (s2.final_value_bt[~s2.truncated_bt] == 0).all()
    for b, t in zip(rows.tolist(), steps.tolist()):
        # memory after frames 0..t of row b, then the final frame with first=False
        sub = state_select(s2.state0, [b])
        with torch.no_grad():
            _, state = policy(s2.img_bthwc[b : b + 1, : t + 1], s2.first_bt[b : b + 1, : t + 1], sub)
        # the k-th episode end of env b (counting segment 1) produced this final frame
        k = int(
            (s1.terminated_bt | s1.truncated_bt)[b].sum()
            + (s2.terminated_bt | s2.truncated_bt)[b, : t + 1].sum()
        )
        final = torch.from_numpy([img for i, img in env.final_obs_log if i == b][k - 1])
        with torch.no_grad():
            out, _ = policy(final[None, None], torch.zeros(1, 1, dtype=torch.bool), state)
        expect = policy.value_head.denormalize(out.vpred)[0, 0]
        torch.testing.assert_close(s2.final_value_bt[b, t], expect, atol=1e-5, rtol=1e-5)


def test_prior_memory_is_carried_across_segments(rollout):
    _, prior, (s1, s2), _ = rollout
    img = torch.cat([s1.img_bthwc, s2.img_bthwc], 1)
    first = torch.cat([s1.first_bt, s2.first_bt], 1)
    with torch.no_grad():
        out, _ = prior(img, first, prior.initial_state(3))
    for k in ("buttons", "camera"):
        torch.testing.assert_close(s1.prior_logprobs[k], out.logprobs[k][:, :7], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(s2.prior_logprobs[k], out.logprobs[k][:, 7:], atol=1e-5, rtol=1e-5)
    # and it differs from a prior whose memory was reset at the segment start (docs/implementation_details.md item 7)
    with torch.no_grad():
        reset_out, _ = prior(s2.img_bthwc, s2.first_bt, prior.initial_state(3))
    carried = ~s2.first_bt[:, 0]
    assert (
        reset_out.logprobs["buttons"][carried, 0] - s2.prior_logprobs["buttons"][carried, 0]
    ).abs().max() > 1e-4


def test_episode_stats_count_completed_episodes(rollout):
    # 14 steps: env 0 ends at 4, 8, 12; env 1 at 5, 10; env 2 at 6, 12
    _, _, (s1, s2), _ = rollout
    ends = int((s1.terminated_bt | s1.truncated_bt).sum() + (s2.terminated_bt | s2.truncated_bt).sum())
    assert ends == 7


def test_restarted_worker_bootstraps_from_the_value_before_the_step():
    """A worker that dies mid-segment: its step is reported truncated with final_obs = the frame
    just acted on. The bootstrap value is V(o_t) from before the step (vpred_bt), not a forward of
    that frame from a memory that already holds it (docs/implementation_details.md item 4)."""
    import functools

    from doubles import fake_envs

    from vpt_rl.envs.pool import EnvPool

    torch.set_num_threads(1)
    fns = [
        functools.partial(fake_envs.make_counting, episode_len=100, img_shape=(H, W, 3)),
        functools.partial(
            fake_envs.make_counting, episode_len=100, fail_mode="exit", fail_at=3, img_shape=(H, W, 3)
        ),
    ]
    policy = _policy(0)
    pool = EnvPool(fns, step_timeout=20.0)
    try:
        roller = Roller(pool, policy, 6, torch.device("cpu"), _samplers(2))
        roller.start(pool.reset(seed=0)[0])
        calls = []
        policy.register_forward_hook(lambda *_: calls.append(1))
        seg = roller.collect()
    finally:
        pool.close()
    assert pool.restarts == 2  # env 1 dies at its 3rd step in every process: steps 2 and 5
    assert seg.truncated_bt[1].tolist() == [False, False, True, False, False, True]
    assert not seg.truncated_bt[0].any()
    for t in (2, 5):
        assert seg.final_value_bt[1, t] == seg.vpred_bt[1, t]
    # one act per step plus the next-value forward: no extra forward for the restarted rows
    assert len(calls) == 6 + 1
    # what the old code computed (V of o_t fed again after it) is a different number
    with torch.no_grad():
        _, state = policy(seg.img_bthwc[1:, :3], seg.first_bt[1:, :3], state_select(seg.state0, [1]))
        out, _ = policy(seg.img_bthwc[1:, 2:3], torch.zeros(1, 1, dtype=torch.bool), state)
    assert abs(float(policy.value_head.denormalize(out.vpred)[0, 0]) - float(seg.vpred_bt[1, 2])) > 1e-6


def _voxel_rollout(overlap: bool, segments: int = 2):
    """Two segments on 4 voxel worlds (7-step episodes: truncations inside), tiny policy + prior."""
    from vpt_rl.config import LEARNABLE_VOXEL_KWARGS
    from vpt_rl.envs.factory import make_env_fns
    from vpt_rl.envs.pool import EnvPool

    kwargs = {**LEARNABLE_VOXEL_KWARGS, "max_episode_steps": 7}
    pool = EnvPool(make_env_fns("vpt_rl/VoxelTreechop-v0", 4, (H, W), kwargs, None), step_timeout=30.0)
    try:
        policy, prior = _policy(0), _policy(1).eval()
        roller = Roller(
            pool,
            policy,
            9,
            torch.device("cpu"),
            _samplers(4, 5),
            prior_kl=PriorKL(prior, "fp32"),
            overlap=overlap,
        )
        roller.start(pool.reset(seed=11)[0])
        return [roller.collect() for _ in range(segments)], roller
    finally:
        pool.close()


def test_double_buffering_gives_the_lockstep_rollout():
    """Same seed: every action, reward, flag and bootstrap value of the overlapped rollout equals
    lockstep's (each env's sampler stream is its own); log-probs and values to float rounding."""
    (lock, lock_roller), (dbl, dbl_roller) = _voxel_rollout(False), _voxel_rollout(True)
    assert lock_roller.groups == 1 and dbl_roller.groups == 2
    for a, b in zip(lock, dbl):
        assert torch.equal(a.img_bthwc, b.img_bthwc) and torch.equal(a.first_bt, b.first_bt)
        assert torch.equal(a.action["buttons"], b.action["buttons"])
        assert torch.equal(a.action["camera"], b.action["camera"])
        assert torch.equal(a.reward_bt, b.reward_bt) and torch.equal(a.truncated_bt, b.truncated_bt)
        assert torch.equal(a.terminated_bt, b.terminated_bt)
        torch.testing.assert_close(b.logprob_bt, a.logprob_bt, atol=1e-5, rtol=0)
        torch.testing.assert_close(b.vpred_bt, a.vpred_bt, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(b.final_value_bt, a.final_value_bt, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(b.next_value_b, a.next_value_b, atol=1e-5, rtol=1e-5)
        for head in ("buttons", "camera"):
            torch.testing.assert_close(b.prior_logprobs[head], a.prior_logprobs[head], atol=1e-5, rtol=0)
        for (ma, ka, _), (mb, kb, _) in zip(a.state0, b.state0):
            assert torch.equal(ma, mb)
            torch.testing.assert_close(kb, ka, atol=1e-5, rtol=1e-5)
    assert lock[0].truncated_bt.any()  # the bootstrap path was exercised
    assert lock_roller.stats.state_dict()["returns"] == dbl_roller.stats.state_dict()["returns"]


def test_double_buffering_needs_a_pool_that_can_step_groups():
    with pytest.raises(ValueError, match="step_send/step_recv"):
        Roller(FakeVecEnv(2), _policy(0), 4, torch.device("cpu"), _samplers(2), overlap=True)


def test_roller_needs_one_sampler_per_env():
    """Per-env streams only (docs/implementation_details.md item 6): one shared generator, or a
    count that is not the env count, is refused."""
    with pytest.raises(ValueError, match="one generator per env"):
        Roller(FakeVecEnv(2), _policy(0), 4, torch.device("cpu"), torch.Generator())
    with pytest.raises(ValueError, match="one generator per env"):
        Roller(FakeVecEnv(2), _policy(0), 4, torch.device("cpu"), _samplers(3))


def test_recompute_mode_keeps_the_start_state_and_carries_the_same_prior_memory():
    """``ppg.prior_logprobs: recompute``: segments hold the prior's start state and no log-prob
    table, and the prior's memory carried across segments is that of the fp32 mode bit for bit."""
    torch.set_num_threads(1)
    policy, prior = _policy(0), _policy(1).eval()
    runs = {}
    for mode in ("fp32", "recompute"):
        env = FakeVecEnv(3)
        roller = Roller(
            env, policy, 5, torch.device("cpu"), _samplers(3), prior_kl=PriorKL(prior, mode, chunks=2)
        )
        roller.start(env.reset()[0])
        runs[mode] = ([roller.collect(), roller.collect()], roller.prior_state)
    (fp32_segs, fp32_state), (rec_segs, rec_state) = runs["fp32"], runs["recompute"]
    assert all(s.prior_logprobs is None and s.prior_state0 is not None for s in rec_segs)
    assert all(s.prior_logprobs is not None and s.prior_state0 is None for s in fp32_segs)
    for a, b in zip(fp32_state, rec_state):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    # the stored start state recomputes the stored table
    with torch.no_grad():
        out, _ = prior(rec_segs[1].img_bthwc, rec_segs[1].first_bt, rec_segs[1].prior_state0)
    for k in ("buttons", "camera"):
        torch.testing.assert_close(out.logprobs[k], fp32_segs[1].prior_logprobs[k], atol=1e-5, rtol=0)
