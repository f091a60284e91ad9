"""configs/smoke.yaml through train_ppo.py with env.backend=ray on a local Ray: the run equals the
same run on local worker processes bit for bit (the envs are the same, only their host differs),
and a Ray run stopped mid-way and resumed equals its uninterrupted run (exact resume on the voxel
world: the env states travel through the actors)."""

from __future__ import annotations

from pathlib import Path

import pytest

# the exact-resume test's helpers (tests/integration is on the test path)
from test_resume import _assert_equal, _train_ppo, _weights

ray = pytest.importorskip(
    "ray", reason="ray is not installed: the Ray backend is the optional extra vpt-rl[ray]"
)

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "configs" / "smoke.yaml")
RAY = ["env.backend=ray", "env.ray.num_cpus=0.5", "log.progress=false"]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # The pools join this Ray (a run with env.ray.address null would start its own).
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


def test_ray_backend_smoke_run_equals_local_and_resumes_exactly(tmp_path):
    tp = _train_ppo()
    common = ["--config", SMOKE, "--runs-dir", str(tmp_path)]
    assert tp.main([*common, "--run-name", "ray_full", *RAY]) == 0
    assert tp.main([*common, "--run-name", "local_full", "log.progress=false"]) == 0
    _assert_equal(_weights(tmp_path / "local_full"), _weights(tmp_path / "ray_full"))
    assert "backend: ray" in (tmp_path / "ray_full" / "config.yaml").read_text()

    assert tp.main([*common, "--run-name", "ray_split", *RAY, "stop_after_frames=48"]) == 0
    assert tp.main(["--resume", str(tmp_path / "ray_split"), "stop_after_frames=null"]) == 0
    _assert_equal(_weights(tmp_path / "ray_full"), _weights(tmp_path / "ray_split"))
    log = (tmp_path / "ray_split" / "train.log").read_text()
    assert "resuming" in log and "episodes restarted" not in log  # env states were restored
