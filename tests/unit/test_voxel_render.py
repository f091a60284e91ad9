"""Voxel renderer: the vectorised ray march agrees with the plain scalar DDA, faces and colours are
right, and the distance field it jumps through is exact (also after blocks are removed)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vpt_rl.envs.voxel import world as W
from vpt_rl.envs.voxel.render import Renderer, block_textures, view_basis


def _flat_world(size: int = 16, ground: int = 4, height: int = 16) -> W.VoxelWorld:
    """Grass plain (top of the grass at z = ground) with a barrier ring and cap, like `generate`."""
    blocks = np.zeros((size + 2, size + 2, height), np.int8)
    blocks[:, :, 1 : ground - 1] = W.DIRT
    blocks[:, :, ground - 1] = W.GRASS
    blocks[:, :, 0] = W.BEDROCK
    blocks[0], blocks[-1], blocks[:, 0], blocks[:, -1] = (W.BARRIER,) * 4
    blocks[:, :, -1] = W.BARRIER
    return W.VoxelWorld(blocks)


def _cell_index(world: W.VoxelWorld, cells: np.ndarray) -> np.ndarray:
    return (cells.astype(np.int64) * world.strides[:, None]).sum(0)


def _near_edge(point: np.ndarray, face_axis: int, tol: float = 1e-3) -> bool:
    """Whether a hit point lies within `tol` of an edge of the face it hit (float32 corner cases)."""
    others = [a for a in range(3) if a != face_axis]
    frac = point[others] - np.floor(point[others])
    return bool(np.any(np.minimum(frac, 1 - frac) < tol))


@pytest.mark.parametrize("seed", [0, 1])
def test_ray_march_matches_scalar_dda(seed: int) -> None:
    """Every ray ends in the cell the plain DDA hits first; the only differences allowed are rays
    grazing a cell edge within 1e-3 (float32 vs float64), and they must be rare."""
    world, _, spawn, yaw = W.generate(np.random.default_rng(seed), W.WorldParams(spawn_facing_tree=True))
    eye = spawn + np.array([0.0, 0.0, 1.62])
    renderer = Renderer(24, 32, view_distance=16.0)
    checked = grazing = 0
    for d_yaw, pitch in itertools.product((0.0, 70.0, 190.0), (-40.0, 0.0, 25.0, 70.0)):
        cells = renderer.trace(world, eye, yaw + d_yaw, pitch)
        got = _cell_index(world, cells)
        for k in range(renderer.n):
            direction = renderer.dirs[:, k].astype(np.float64)
            ref = world.raycast(eye, direction, renderer.view_distance - 1.0)
            if ref is None:
                # ended in air, or hit something beyond the reference's horizon (then fully fogged)
                assert (
                    world.flat[got[k]] == W.AIR
                    or world.raycast(eye, direction, 1e9)[3] > renderer.view_distance - 1
                )
                continue
            checked += 1
            if got[k] != int(np.dot(ref[0], world.strides)):
                assert _near_edge(eye + direction * ref[3], ref[2]), (k, ref, cells[:, k])
                grazing += 1
    assert checked > 1000
    assert grazing <= 0.005 * checked


def test_colours_of_faces_and_sky() -> None:
    """Looking down: grass green; at a log: bark brown; up: sky blue; far away: fog = sky colour."""
    world = _flat_world()
    world.blocks[9, 12, 4:9] = W.OAK_LOG  # trunk 3 cells ahead of the eye along +y
    world = W.VoxelWorld(world.blocks)
    eye = np.array([9.5, 9.5, 4 + 1.62])
    renderer = Renderer(32, 32)

    def centre(yaw: float, pitch: float) -> np.ndarray:
        img = renderer.render(world, eye, yaw, pitch)
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8
        return img[14:18, 14:18].reshape(-1, 3).astype(int).mean(0)

    down, log, up = centre(0.0, 89.0), centre(0.0, 0.0), centre(0.0, -89.0)
    assert down[1] > down[0] + 30 and down[1] > down[2] + 30  # green grass top
    assert log[0] > log[1] > log[2] and log.sum() < 300  # brown bark
    assert up[2] > up[0] + 40  # blue sky
    far = renderer.render(world, eye, 180.0, 0.0)  # empty plain behind: the horizon row is fogged
    horizon = far[15:17].reshape(-1, 3).astype(int).mean(0)
    sky = far[0:2].reshape(-1, 3).astype(int).mean(0)
    assert np.abs(horizon - sky).max() < 60


def test_trunks_stand_out_from_leaves_and_grass() -> None:
    """Bark is not green and differs clearly from leaves and grass (trunks visible at 32x32)."""
    tex = block_textures().reshape(W.N_BLOCKS, 4, -1, 3).mean(2)  # (block, face, rgb)
    side = 2
    for log in W.LOG_BLOCKS:
        assert tex[log, side, 0] >= tex[log, side, 1]  # red >= green: brown or white, never green
        for other in (*W.LEAF_BLOCKS, W.GRASS):
            face = 0 if other == W.GRASS else side
            assert tex[other, face, 1] > tex[other, face, 0] + 20  # green
            red_green = (tex[log, side, 0] - tex[log, side, 1]) - (tex[other, face, 0] - tex[other, face, 1])
            brighter = tex[log, side].mean() - tex[other, face].mean()
            assert red_green > 50 or brighter > 60  # brown vs green, or white birch bark
            assert np.linalg.norm(tex[log, side] - tex[other, face]) > 45


def test_view_basis_conventions() -> None:
    """Yaw 0 looks along +y, yaw 90 along +x; positive pitch looks down; up is up."""
    np.testing.assert_allclose(view_basis(0.0, 0.0)[:, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(view_basis(90.0, 0.0)[:, 0], [1, 0, 0], atol=1e-12)
    assert view_basis(0.0, 30.0)[2, 0] < 0
    np.testing.assert_allclose(view_basis(37.0, 0.0)[:, 2], [0, 0, 1], atol=1e-12)
    renderer = Renderer(8, 8)
    renderer.trace(_flat_world(), np.array([9.5, 9.5, 6.0]), 0.0, 0.0)
    assert renderer.dirs[2, 0] > 0 > renderer.dirs[2, -1]  # top row looks up, bottom row down


def _brute_chebyshev(solid: np.ndarray, cap: int, axes: tuple[int, ...] = (0, 1, 2)) -> np.ndarray:
    """Distance to the nearest solid cell along `axes`, the other axes equal."""
    cells = np.argwhere(solid)
    other = [a for a in range(3) if a not in axes]
    out = np.full(solid.shape, cap, np.int8)
    for idx in np.ndindex(solid.shape):
        same = np.all(cells[:, other] == np.array(idx)[other], axis=1) if other else np.ones(len(cells), bool)
        if same.any():
            out[idx] = min(
                cap, int(np.abs(cells[same][:, list(axes)] - np.array(idx)[list(axes)]).max(1).min())
            )
    return out


def test_distance_field_exact_and_updated_locally() -> None:
    rng = np.random.default_rng(0)
    solid = rng.random((9, 8, 7)) < 0.04
    np.testing.assert_array_equal(W.chebyshev_field(solid, 4), _brute_chebyshev(solid, 4))
    np.testing.assert_array_equal(
        W.chebyshev_field(solid, 5, axes=(0, 1)), _brute_chebyshev(solid, 5, (0, 1))
    )
    world, *_ = W.generate(
        np.random.default_rng(3), W.WorldParams(world_size=24, trees_near_spawn=2, spawn_radius=6)
    )
    logs = np.argwhere(np.isin(world.blocks, W.LOG_BLOCKS))
    for cell in (logs[0], logs[-1], np.array([5, 5, 3])):
        world.set_block(*(int(c) for c in cell), W.AIR)
    solid = world.blocks != W.AIR
    np.testing.assert_array_equal(world.field, W.chebyshev_field(solid, W.FIELD_CAP))
    np.testing.assert_array_equal(world.flat_field, W.chebyshev_field(solid, W.FLAT_FIELD_CAP, axes=(0, 1)))
    np.testing.assert_array_equal(world.jump, world.field.reshape(-1) - 1.0)
    np.testing.assert_array_equal(world.flat_jump, world.flat_field.reshape(-1) - 1.0)


def test_crack_overlay_darkens_only_the_target() -> None:
    world = _flat_world()
    eye = np.array([9.5, 9.5, 4 + 1.62])
    renderer = Renderer(32, 32)
    target = int(np.dot([9, 11, 3], world.strides))  # grass cell 1.5 blocks ahead, below the eye
    plain = renderer.render(world, eye, 0.0, 45.0)
    cracked = renderer.render(world, eye, 0.0, 45.0, target=target, progress=0.9)
    changed = np.any(plain != cracked, axis=2)
    assert changed.any() and (cracked[changed].astype(int).sum(1) < plain[changed].astype(int).sum(1)).all()
    assert changed.sum() < 0.5 * changed.size
