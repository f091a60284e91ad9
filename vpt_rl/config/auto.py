"""The values of PPGConfig's "auto" fields: one for a fresh policy (no --init, no prior), another
when fine-tuning a pretrained one (--init, with the KL prior). `PPGConfig.resolve` asks `auto_value`
for each field still "auto"; a run's saved config.yaml holds the values it used.
"""

from __future__ import annotations

__all__ = [
    "AUTO_DETACH_VALUE_FRESH",
    "AUTO_ENT_COEF_FRESH",
    "AUTO_FIELDS",
    "AUTO_LR_FRESH",
    "AUTO_LR_PRIOR",
    "AUTO_PI_HEAD_LR_SCALE_FRESH",
    "auto_value",
]

# ent_coef: a small bonus from scratch (0.01 held a fresh 13.9-nat policy near uniform and slowed
# learning on the voxel world; docs/benchmarks.md), 0 with a prior (the KL to the prior keeps the entropy;
# VPT paper, appendix on RL fine-tuning; 0.01 with a prior measured at both settings, worse at full
# difficulty by 5.2 on the eval: docs/benchmarks.md "Seventh pass").
AUTO_ENT_COEF_FRESH = 0.001
# lr: a fresh policy learns fastest at 1e-3 (docs/benchmarks.md "Learning: fresh tiny policy"); a
# pretrained one is fine-tuned at 3e-4: at 1e-3 Adam's unit-size steps on the noise of reward-poor
# batches walked the full-difficulty policy away from its BC start (entropy 3.3 -> 5.1 nats, eval
# 0.65x BC's over 3 seeds at 131k frames), at 3e-4 it held and improved (1.22x), and the learnable
# settings learned at least as fast (docs/benchmarks.md "Full difficulty, fourth pass").
AUTO_LR_FRESH = 1e-3
AUTO_LR_PRIOR = 3e-4
# pi_head_lr_scale: a fresh 8641-way joint button head learns each combination separately, so it
# gets a larger step from scratch; a pretrained head keeps the trunk's learning rate.
AUTO_PI_HEAD_LR_SCALE_FRESH = 3.0
# detach_value_input: a fresh trunk has no features for the value head to read, so from scratch the
# value gradient trains it (plain PPO's shared network, faster on the voxel world; docs/benchmarks.md); a
# pretrained trunk is kept for the policy, PPG's separation (PPG paper, introduction).
AUTO_DETACH_VALUE_FRESH = False

# field -> (value for a fresh policy, value with a prior)
_AUTO: dict[str, tuple[float | bool, float | bool]] = {
    "lr": (AUTO_LR_FRESH, AUTO_LR_PRIOR),
    "ent_coef": (AUTO_ENT_COEF_FRESH, 0.0),
    "pi_head_lr_scale": (AUTO_PI_HEAD_LR_SCALE_FRESH, 1.0),
    "detach_value_input": (AUTO_DETACH_VALUE_FRESH, True),
}
AUTO_FIELDS = tuple(_AUTO)
"""The PPGConfig fields that may be "auto"."""


def auto_value(name: str, has_prior: bool) -> float | bool:
    """The value an "auto" ``ppg.<name>`` takes for a fresh policy or a fine-tuned one."""
    return _AUTO[name][has_prior]
