"""`vpt-rl doctor`: every check's branches on faked probes, the memory plan against real segment
and state tensors, and one real run on this machine."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from typing import Any

import pytest
import torch

from vpt_rl.commands import doctor
from vpt_rl.commands.doctor import GpuInfo, Line, Probes, Target, TorchInfo
from vpt_rl.config import load_config
from vpt_rl.memory_plan import GIB, MIB, env_memory, format_bytes, plan_run
from vpt_rl.model.vpt_config import VPTConfig

MINERL_CONFIG = "configs/vpt_diamond.yaml"
H100 = GpuInfo("NVIDIA H100", 70 * GIB, 80 * GIB, (9, 0))
V100 = GpuInfo("Tesla V100", 30 * GIB, 32 * GIB, (7, 0))


def probes(**changes: Any) -> Probes:
    """A machine where a MineRL run on one H100 has everything it needs."""
    tools = {"java": "/usr/bin/java", "xvfb-run": "/usr/bin/xvfb-run"}
    versions = {"minerl": "1.0.2", "numpy": "1.23.5", "ray": "2.9.0"}
    base = Probes(
        which=tools.get,
        run=lambda argv: (0, "", 'openjdk version "1.8.0_392"\nOpenJDK Runtime Environment\n'),
        module_version=versions.get,
        environ={},
        python_version=(3, 10, 14),
        torch=lambda: TorchInfo("2.13.0+cu124", "12.4", (H100,), nccl=True),
        available_memory=lambda: 512 * GIB,
        disk_free=lambda path: 2000 * GIB,
        model_size=lambda vpt: (284 * MIB, 71_000_000),  # ~1x; the real count is tested below
    )
    return dataclasses.replace(base, **changes)


def target(*overrides: str, config: str | None = MINERL_CONFIG, has_prior: bool = True) -> Target:
    cfg = load_config([config] if config else [], list(overrides))
    return Target(cfg, VPTConfig.preset(cfg.model.preset), "test", has_prior)


def voxel(*overrides: str) -> Target:
    return target("model.preset=1x", *overrides, config=None, has_prior=False)


def only(lines: list[Line]) -> Line:
    assert len(lines) == 1, lines
    return lines[0]


def test_a_complete_machine_passes_every_check():
    lines = doctor.diagnose(probes(), target())
    assert [line.status for line in lines] == ["OK"] * len(lines), doctor.render(lines)
    assert doctor.exit_code(lines) == 0
    assert {"python", "torch", "device", "gpu 0", "nccl", "host memory", "gpu memory", "disk"} <= {
        line.name for line in lines
    }


# ---------------------------------------------------------------- Java
@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "1.8.0_392"\nOpenJDK Runtime Environment (build 1.8.0_392-b08)', 8),
        ('java version "1.8.0_202"', 8),
        ('openjdk version "17.0.9" 2023-10-17', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.7.0_80"', 7),
        ("bash: java: command not found", None),
    ],
)
def test_java_major(output, major):
    assert doctor.java_major(output) == major


def test_java_8_is_ok():
    line = only(doctor.check_java(probes(), target()))
    assert line.status == "OK" and "Java 8" in line.detail


def test_java_17_fails_for_minerl_and_warns_for_voxel():
    p = probes(run=lambda argv: (0, "", 'openjdk version "17.0.9" 2023-10-17\n'))
    line = only(doctor.check_java(p, target()))
    assert line.status == "FAIL" and "Java 17" in line.detail and "JDK 8" in line.fix
    assert only(doctor.check_java(p, voxel())).status == "WARN"


def test_no_java_fails_for_minerl_and_warns_for_voxel():
    p = probes(which=lambda name: None)
    line = only(doctor.check_java(p, target()))
    assert line.status == "FAIL" and "no `java` on PATH" in line.detail
    line = only(doctor.check_java(p, voxel()))
    assert line.status == "WARN" and "only needed for MineRL" in line.detail


# ---------------------------------------------------------------- minerl, numpy, display, python
def test_pypi_minerl_0_4_4_fails_with_the_git_install():
    p = probes(module_version={"minerl": "0.4.4", "numpy": "1.23.5"}.get)
    line = only(doctor.check_minerl(p, target()))
    assert line.status == "FAIL" and "0.4.4" in line.detail
    assert "git+https://github.com/minerllabs/minerl@v1.0.2" in line.fix
    assert only(doctor.check_minerl(p, voxel())).status == "WARN"


def test_minerl_missing_fails_for_minerl_and_warns_for_voxel():
    p = probes(module_version={"numpy": "1.23.5"}.get)
    assert only(doctor.check_minerl(p, target())).status == "FAIL"
    assert only(doctor.check_minerl(p, voxel())).status == "WARN"
    assert only(doctor.check_minerl(probes(), target())).status == "OK"


def test_numpy_1_26_fails_with_minerl_only():
    p = probes(module_version={"minerl": "1.0.2", "numpy": "1.26.4"}.get)
    line = only(doctor.check_numpy(p, target()))
    assert line.status == "FAIL" and "< 1.24" in line.detail and "numpy<1.24" in line.fix
    assert only(doctor.check_numpy(p, voxel())).status == "OK"


def test_display():
    assert only(doctor.check_display(probes(environ={"DISPLAY": ":0"}), target())).status == "OK"
    xvfb_only = only(doctor.check_display(probes(), target()))  # no DISPLAY, xvfb-run on PATH
    assert xvfb_only.status == "OK" and "xvfb-run -a" in xvfb_only.detail
    p = probes(which={"java": "/usr/bin/java"}.get)
    line = only(doctor.check_display(p, target()))
    assert line.status == "FAIL" and "no $DISPLAY and no xvfb-run" in line.detail
    assert only(doctor.check_display(p, voxel())).status == "WARN"


def test_python_versions():
    assert only(doctor.check_python(probes(python_version=(3, 9, 18)), voxel())).status == "FAIL"
    newer = probes(python_version=(3, 12, 1))
    assert only(doctor.check_python(newer, target())).status == "FAIL"  # no numpy < 1.24 wheels
    assert only(doctor.check_python(newer, voxel())).status == "WARN"
    assert only(doctor.check_python(probes(), target())).status == "OK"


# ---------------------------------------------------------------- torch, device, GPUs, NCCL
CPU_TORCH = TorchInfo("2.13.0+cpu", None, (), nccl=False)


def test_cuda_absent_with_device_cuda_fails_saying_why():
    line = only(doctor.check_device(probes(torch=lambda: CPU_TORCH), target("device=cuda")))
    assert line.status == "FAIL" and "CUDA is not available" in line.detail
    assert "CPU-only build" in line.detail and "device=cpu" in line.fix


def test_cuda_absent_with_device_auto_says_cpu():
    p = probes(torch=lambda: CPU_TORCH)
    line = only(doctor.check_device(p, target()))  # 1x on the CPU: slow, a warning
    assert line.status == "WARN" and "auto -> cpu" in line.detail
    tiny = only(doctor.check_device(p, target("model.preset=tiny", config=None, has_prior=False)))
    assert tiny.status == "OK" and "auto -> cpu" in tiny.detail
    no_gpu = TorchInfo("2.13.0+cu124", "12.4", (), nccl=True)
    line = only(doctor.check_device(probes(torch=lambda: no_gpu), target()))
    assert "sees no GPU" in line.detail and "nvidia-smi" in line.fix


def test_device_index_beyond_the_gpus_fails():
    assert only(doctor.check_device(probes(), target("device=cuda:3"))).status == "FAIL"
    line = only(doctor.check_device(probes(), target("device=cuda:0")))
    assert line.status == "OK" and "H100" in line.detail


def test_bf16_precision_on_a_gpu_without_bf16_fails():
    p = probes(torch=lambda: TorchInfo("2.13.0", "12.4", (V100,), nccl=True))
    assert only(doctor.check_gpus(p, target("perf.precision=bf16"))).status == "FAIL"
    line = only(doctor.check_gpus(p, target()))
    assert line.status == "OK" and "bf16 no" in line.detail
    assert "bf16 yes" in only(doctor.check_gpus(probes(), target())).detail


def test_nccl():
    no_nccl = probes(torch=lambda: TorchInfo("2.13.0", "12.4", (H100,), nccl=False))
    assert only(doctor.check_nccl(no_nccl, target())).status == "WARN"
    multi = dataclasses.replace(no_nccl, environ={"WORLD_SIZE": "2"})
    assert only(doctor.check_nccl(multi, target())).status == "FAIL"
    line = only(doctor.check_nccl(probes(torch=lambda: CPU_TORCH), target()))
    assert line.status == "OK" and "gloo" in line.detail


def test_torch_that_does_not_import_fails():
    p = probes(torch=lambda: TorchInfo(None, error="ImportError: libcudart.so.12"))
    line = only(doctor.check_torch(p, target()))
    assert line.status == "FAIL" and "libcudart" in line.detail


# ---------------------------------------------------------------- memory and disk
def _by_name(lines: list[Line]) -> dict[str, Line]:
    return {line.name: line for line in lines}


def test_host_memory_short_fails_and_tight_warns():
    t = target()
    need = doctor._plan(probes(), t).host_bytes
    lines = _by_name(doctor.check_memory(probes(available_memory=lambda: need - 1), t))
    assert lines["host memory"].status == "FAIL" and "env.num_envs" in lines["host memory"].fix
    lines = _by_name(doctor.check_memory(probes(available_memory=lambda: int(need / 0.9)), t))
    assert lines["host memory"].status == "WARN"
    assert _by_name(doctor.check_memory(probes(), t))["host memory"].status == "OK"
    # two ranks on the machine need twice as much
    two = dataclasses.replace(t, nproc=2)
    p = probes(available_memory=lambda: int(need * 1.5))
    assert _by_name(doctor.check_memory(p, two))["host memory"].status == "FAIL"


def test_gpu_memory_short_fails():
    t = target()
    need = doctor._plan(probes(), t).device_bytes
    small = GpuInfo("small", need - 1, 16 * GIB, (8, 6))
    lines = _by_name(
        doctor.check_memory(probes(torch=lambda: TorchInfo("2.13.0", "12.4", (small,), True)), t)
    )
    assert lines["gpu memory"].status == "FAIL"
    assert "gpu memory" not in _by_name(doctor.check_memory(probes(torch=lambda: CPU_TORCH), t))


def test_disk_short_fails():
    t = target()
    need = doctor._plan(probes(), t).disk_bytes
    line = only(doctor.check_disk(probes(disk_free=lambda path: need - 1), t))
    assert line.status == "FAIL" and "ckpt.keep_last" in line.fix
    assert only(doctor.check_disk(probes(), t)).status == "OK"


def test_plan_scales_with_envs_and_keeps_all_checkpoints_when_asked():
    sizes = (284 * MIB, 71_000_000)
    vpt = VPTConfig.preset("1x")
    a = plan_run(load_config([MINERL_CONFIG]), vpt, True, on_gpu=True, sizes=sizes)
    b = plan_run(load_config([MINERL_CONFIG], ["env.num_envs=32"]), vpt, True, on_gpu=True, sizes=sizes)
    assert b.host_bytes - a.host_bytes == 16 * a.per_env.host(on_gpu=True)
    assert a.checkpoints_kept == 5 + 2
    cfg = load_config([MINERL_CONFIG], ["ckpt.keep_last=0", "total_frames=1310720"])  # 640 iterations
    assert plan_run(cfg, vpt, True, on_gpu=True, sizes=sizes).checkpoints_kept == 640 // 20 + 2
    # each rank writes its own envs' part; without the aux buffer that part is the live states only
    two = plan_run(load_config([MINERL_CONFIG]), vpt, True, on_gpu=True, world_size=2, sizes=sizes)
    rank_part = two.checkpoint_bytes - a.checkpoint_bytes
    assert rank_part == 16 * (a.per_env.live + 31 * a.per_env.segment)
    lean = dataclasses.replace(a, aux_in_checkpoint=False)
    assert a.checkpoint_bytes - lean.checkpoint_bytes == 16 * 31 * a.per_env.segment


# ---------------------------------------------------------------- torchrun, ray
RDZV = {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500", "RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "0"}


@pytest.mark.parametrize(
    ("environ", "status", "words"),
    [
        ({}, "OK", "one process"),
        (RDZV, "OK", "rank 3 of 8"),
        ({"RANK": "0", "WORLD_SIZE": "2"}, "FAIL", "MASTER_ADDR, MASTER_PORT, LOCAL_RANK missing"),
        ({**RDZV, "RANK": "8"}, "FAIL", "RANK 8 not in [0, WORLD_SIZE 8)"),
        ({**RDZV, "LOCAL_WORLD_SIZE": "1", "LOCAL_RANK": "1"}, "FAIL", "LOCAL_RANK 1"),
        ({**RDZV, "MASTER_PORT": "http"}, "FAIL", "not an integer"),
        ({**RDZV, "LOCAL_RANK": "2"}, "FAIL", "only 1 GPU(s) visible"),
    ],
)
def test_torchrun_variables(environ, status, words):
    line = only(doctor.check_torchrun(probes(environ=environ), target()))
    assert line.status == status and words in line.detail, line


def test_ray_only_needed_with_the_ray_backend():
    no_ray = probes(module_version={"minerl": "1.0.2", "numpy": "1.23.5"}.get)
    assert only(doctor.check_ray(no_ray, voxel())).status == "OK"
    line = only(doctor.check_ray(no_ray, voxel("env.backend=ray")))
    assert line.status == "FAIL" and ".[ray]" in line.fix
    assert only(doctor.check_ray(probes(), voxel("env.backend=ray"))).status == "OK"


# ---------------------------------------------------------------- output
def test_render_aligns_columns_and_summarises():
    lines = [Line("OK", "python", "3.11.7"), Line("FAIL", "host memory", "short", "fewer envs")]
    text = doctor.render(lines)
    rows = text.splitlines()
    assert rows[0].index("3.11.7") == rows[1].index("short") == rows[2].index("-> fewer envs")
    assert rows[-1] == "1 OK, 0 WARN, 1 FAIL: fix the FAIL lines before launching"
    assert doctor.exit_code(lines) == 1 and doctor.exit_code(lines[:1]) == 0


# ---------------------------------------------------------------- the memory plan against real tensors
@pytest.mark.parametrize("preset", ["tiny", "1x"])
def test_state_bytes_equal_a_real_memory_state(preset):
    from vpt_rl.model.state import initial_state

    vpt = VPTConfig.preset(preset)
    with torch.device("meta"):
        state = initial_state(vpt.n_recurrence_layers, 1, vpt.memory_size, vpt.hidsize)
    tensors = {id(x): x for block in state for x in block}  # the blocks share one mask
    assert (
        sum(x.numel() * x.element_size() for x in tensors.values()) == env_memory(vpt, 64, 1, 1, False).state
    )


def test_segment_bytes_equal_a_real_segment():
    from vpt_rl.algo.roller import _SegmentBuffer

    vpt, t = VPTConfig.preset("tiny"), 16
    seg = _SegmentBuffer(1, t, vpt.img_shape).segment(torch.zeros(1), [])
    seg.adv_bt, seg.ret_bt = torch.zeros(1, t), torch.zeros(1, t)  # what GAE adds
    per_frame = [v for f in dataclasses.fields(seg) for v in _tensors(getattr(seg, f.name)) if v.dim() >= 2]
    m = env_memory(vpt, t, 1, 1, False)
    assert sum(x.numel() * x.element_size() for x in per_frame) == m.frames + m.step_data


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    return list(value.values()) if isinstance(value, dict) else []


def test_model_size_of_1x():
    from vpt_rl.memory_plan import model_size

    weight_bytes, trainable = model_size(VPTConfig.preset("1x"))
    assert trainable <= weight_bytes // 4 and abs(weight_bytes / 4 - 71_000_000) < 1_000_000


def test_format_bytes():
    assert [format_bytes(n) for n in (512, 5504, 4 * MIB, 320 * MIB, int(7.3 * GIB))] == [
        "512 B",
        "5.4 KiB",
        "4.0 MiB",
        "320 MiB",
        "7.3 GiB",
    ]


# ---------------------------------------------------------------- the real command on this machine
def test_real_doctor_on_this_machine(capsys):
    from vpt_rl.cli import main

    assert main(["doctor"]) == 0  # the default voxel run needs neither CUDA nor MineRL
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith(tuple(f"{n} OK" for n in range(30)))
    if not torch.cuda.is_available():
        assert "auto -> cpu: CUDA is not available" in out
        assert ("CPU-only build" in out) == (torch.version.cuda is None)
    has_minerl = importlib.util.find_spec("minerl") is not None
    if not has_minerl:
        assert re.search(r"WARN +minerl +not installed \(only needed for MineRL env ids\)", out)
        assert main(["doctor", "--config", MINERL_CONFIG]) == 1
        out = capsys.readouterr().out
        assert re.search(r"FAIL +minerl +not installed\n", out) and "minerllabs/minerl@v1.0.2" in out


def test_real_doctor_rejects_a_bad_override(capsys):
    from vpt_rl.cli import main

    assert main(["doctor", "env.num_envz=4"]) == 2
    assert "num_envz" in capsys.readouterr().err
