"""A two-node Ray cluster on this machine: envs placed by a custom resource on the second "node",
actors dying with their driver, and close() ending them (tests/integration/test_ray_cluster.py
runs it; docs/scaling.md "Env workers on a Ray cluster").

    python scripts/ray_two_nodes.py [--limit 180]

Starts ``ray start --head --num-cpus 1`` and ``ray start --address ... --num-cpus 2 --resources
'{"envnode": 1}'`` (both on 127.0.0.1, in a private --temp-dir, each with ``--block`` in its own
process group), then:

1. a RayEnvPool with ``env.ray.address`` set and ``resources: {envnode: 0.25}`` per env: every
   actor runs on the env node (its node id), and the pool steps the voxel world;
2. a second driver process creates its own pool and is killed with SIGKILL (a trainer killed by
   the OOM killer): its actors' processes must be gone soon after, without any close();
3. close() of the first pool: its actors' processes are gone.

Cleanup, always (and at the --limit alarm): ray.shutdown(), then SIGTERM / SIGKILL to the two
``ray start`` process groups this script started, by their ids (never ``ray stop --force``, which
would stop every Ray instance of the machine, other users' included).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
# A throwaway cluster on the loopback interface: no token (Ray 2.5x's token auth would share one
# file in ~/.ray with every other Ray of this user).
os.environ["RAY_AUTH_MODE"] = "disabled"
RAY = str(Path(sys.executable).with_name("ray"))

VICTIM = """
import sys, time
import ray
ray.init(address=sys.argv[1], _node_ip_address="127.0.0.1", logging_level="WARNING")
from vpt_rl.config.ppg import RayEnvConfig
from vpt_rl.envs.factory import make_env_fns
from vpt_rl.envs.ray_pool import RayEnvPool
fns = make_env_fns("vpt_rl/VoxelTreechop-v0", 2, (32, 32), {}, None)
pool = RayEnvPool(fns, RayEnvConfig(address=sys.argv[1], num_cpus=0.5, resources={"envnode": 0.25}), name="victim")
print(" ".join(str(a.pid) for a in pool._actors), flush=True)
time.sleep(600)
"""


class Timeout(Exception):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.5)
    raise Timeout(f"the head node did not listen on port {port} within {limit:g} s")


def _wait_gone(pids: list[int], limit: float) -> list[int]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        alive = [
            p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
        ]
        if not alive:
            return []
        time.sleep(0.2)
    return alive


def _stop(group: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL, the process group of one `ray start --block` (started by us)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(group.pid, sig)
        except ProcessLookupError:
            return
        try:
            group.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(group.pid, signal.SIGKILL)  # whatever the group still holds (raylet, workers)
    except ProcessLookupError:
        pass


def run(address: str, temp_dir: str) -> None:
    import numpy as np
    import ray

    from vpt_rl.config.ppg import RayEnvConfig
    from vpt_rl.envs.factory import make_env_fns
    from vpt_rl.envs.ray_pool import RayEnvPool

    # Ray turns a 127.0.0.1 address into the machine's outward address unless the driver says it
    # is on the loopback node too (what `ray start` prints); the pool then uses this connection.
    ray.init(address=address, _node_ip_address="127.0.0.1", logging_level="WARNING")
    cfg = RayEnvConfig(address=address, num_cpus=0.5, resources={"envnode": 0.25}, envs_per_actor=1)
    fns = make_env_fns("vpt_rl/VoxelTreechop-v0", 2, (32, 32), {}, None)
    pool = RayEnvPool(fns, cfg, step_timeout=30, reset_timeout=120, name="twonode")
    env_node = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("envnode")]
    head = [n["NodeID"] for n in ray.nodes() if n["Alive"] and not n["Resources"].get("envnode")]
    print(f"nodes: head {head}, env node {env_node}; actors on {pool.node_ids}")
    assert len(env_node) == 1 and len(head) == 1, ray.nodes()
    assert pool.node_ids == [env_node[0]] * 2, "an env actor runs outside the node with the resource"
    pool.reset(seed=0)
    for _ in range(20):
        pool.step({"buttons": np.zeros(2, np.int64), "camera": np.full(2, 60)})
    print("placement: OK (2 envs on the envnode node, 20 steps)")

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    victim = subprocess.Popen(
        [sys.executable, "-c", VICTIM, address], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    try:
        pids = [int(p) for p in victim.stdout.readline().split()]  # type: ignore[union-attr]
        assert pids and all(psutil.pid_exists(p) for p in pids), pids
        victim.kill()  # no close(), no atexit: like the OOM killer
        victim.wait(10)
        left = _wait_gone(pids, 60)
        assert not left, f"actors {left} outlived their killed driver"
        print(f"owner death: OK (actor processes {pids} gone after their driver's SIGKILL)")
    finally:
        victim.kill()
        victim.wait(10)

    pids = [a.pid for a in pool._actors]
    pool.close()
    left = _wait_gone(pids, 30)
    assert not left, f"actors {left} outlived close()"
    print(f"close: OK (actor processes {pids} gone)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=float, default=180, help="seconds before everything is stopped")
    args = p.parse_args()

    def alarm(*_):
        raise Timeout(f"ray_two_nodes.py: over its {args.limit:g} s limit")

    signal.signal(signal.SIGALRM, alarm)
    signal.signal(signal.SIGTERM, alarm)
    signal.alarm(int(args.limit))
    port = _free_port()
    address = f"127.0.0.1:{port}"
    temp_dir = tempfile.mkdtemp(prefix="ray2n", dir="/tmp")  # short: Ray's socket paths live here
    common = ["--block", "--disable-usage-stats", "--node-ip-address", "127.0.0.1"]
    groups: list[subprocess.Popen] = []
    try:
        head = [RAY, "start", "--head", "--port", str(port), "--num-cpus", "1", "--include-dashboard=false"]
        groups.append(subprocess.Popen([*head, "--temp-dir", temp_dir, *common], start_new_session=True))
        node = [RAY, "start", "--address", address, "--num-cpus", "2", "--resources", '{"envnode": 1}']
        groups.append(subprocess.Popen([*node, *common], start_new_session=True))
        _wait_listening(port, 90)
        run(address, temp_dir)
        print("two-node cluster: all OK")
        return 0
    finally:
        signal.alarm(0)
        try:
            import ray

            ray.shutdown()
        finally:
            for group in reversed(groups):
                _stop(group)
            shutil.rmtree(temp_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
