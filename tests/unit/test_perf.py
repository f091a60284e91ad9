"""The perf switches: precision resolution, applying them to a policy, the allocator setting."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from vpt_rl.config import PerfConfig, load_config
from vpt_rl.config.lib import ConfigError
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.vpt_config import VPTConfig
from vpt_rl.perf import apply_perf, resolve_autocast


def test_precision_resolution(monkeypatch):
    from vpt_rl import perf

    cpu = torch.device("cpu")
    assert resolve_autocast("auto", cpu, hidsize=64) is None  # tiny: bf16 is slower on CPU
    monkeypatch.setattr(perf, "cpu_has_native_bf16", lambda: True)
    assert resolve_autocast("auto", cpu, hidsize=1024) is torch.bfloat16  # 1x: ~2x faster where native
    monkeypatch.setattr(perf, "cpu_has_native_bf16", lambda: False)
    assert resolve_autocast("auto", cpu, hidsize=1024) is None
    assert resolve_autocast("fp32", cpu) is None
    assert resolve_autocast("bf16", cpu) is torch.bfloat16
    with pytest.raises(ValueError, match="perf.precision"):
        resolve_autocast("fp16", cpu)


def test_config_rejects_unknown_precision():
    with pytest.raises(ConfigError, match="perf.precision"):
        load_config([], ["perf.precision=fp8"])


def test_apply_perf_sets_the_policy():
    policy = VPTPolicy(VPTConfig.preset("tiny"))
    note = apply_perf(policy, PerfConfig(fused_attention=False, precision="bf16"), torch.device("cpu"))
    assert note == "compute: plain attention, bf16 autocast"
    assert policy.autocast_dtype is torch.bfloat16
    assert not any(b.r.orc_block.fused for b in policy.net.recurrent_layer.blocks)
    assert apply_perf(policy, PerfConfig(), torch.device("cpu")) == "compute: fused attention, fp32"
    prior = VPTPolicy(VPTConfig.preset("tiny"))
    note = apply_perf(
        (policy, prior, None), PerfConfig(precision="bf16"), torch.device("cpu")
    )  # None: no prior
    assert note == "compute: fused attention, bf16 autocast"
    assert policy.autocast_dtype is prior.autocast_dtype is torch.bfloat16


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
@pytest.mark.parametrize("tuned", [False, True])
def test_reuse_freed_memory_stops_page_faults_on_large_tensors(tuned):
    """Allocating and filling a 64 MB tensor again and again: with glibc's defaults every round
    maps fresh memory and faults in its 16k pages; after `reuse_freed_memory` the freed memory is
    reused and there are (almost) no faults. Run in a child so this test process is unchanged."""
    code = (
        "import resource, torch\n"
        "from vpt_rl.perf import reuse_freed_memory\n"
        f"if {tuned}: assert reuse_freed_memory()\n"
        "def rounds(n):\n"
        "    for _ in range(n):\n"
        "        x = torch.empty(16 * 2**20); x.fill_(1.0); del x\n"
        "rounds(4)\n"  # glibc may alternate between two chunks at first
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "rounds(5)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    faults = int(out.strip())
    if tuned:
        assert faults < 50, faults
    else:  # 5 rounds x 16k pages of 4 kB (or x 32 pages where huge pages are always on)
        assert faults >= 5 * 32, faults
