"""First-person ray caster for the voxel world: every pixel's ray marched at once in numpy.

Why numpy and not an OpenGL context: the world must run everywhere (CI, laptops, pool workers
without a display) with numpy and OpenCV only (docs/environments.md "Speed"). Where the speed comes from:

- ray directions precomputed in camera space; per view one 3x3 rotation, cached while the camera
  does not turn;
- empty-space skipping: the world keeps two Chebyshev distance fields (world.py), empty cubes and
  empty squares within a layer, and each iteration jumps a ray to the farther exit of the two
  boxes around its cell, so open air, sky and rays skimming the ground take a few iterations
  instead of one per cell (about 3x fewer than a plain DDA, measured); with k = 1 the jump is
  exactly a DDA step;
- all per-ray state in one preallocated (rows, pixels) float32 array, compacted with one ``take``
  when enough rays have ended, so late iterations only touch the rays still flying; no boolean
  indexing or masked ufuncs in the loop (5-10x slower than plain same-type numpy operations);
- a short view distance with fog into the exact sky colour, and a low world cap;
- colours from lookup tables: (block, face, texel) -> RGB and ray height -> sky, blended in int16.

`VoxelWorld.raycast` is the plain scalar DDA reference; tests compare the two.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vpt_rl.envs.voxel import world as W

_CHECK_EVERY = 3  # iterations between counts of the rays still flying
_COMPACT_BELOW = 0.6  # compact the ray state when fewer than this share of it still flies
_NUDGE = np.float32(3e-5)  # blocks: how far past a plane a jump lands, along each axis's travel
TEX = 8  # texels per block edge
FOG_SHIFT = 7
FOG_ONE = 1 << FOG_SHIFT  # fog weight fixed point: FOG_ONE = all sky
FACE_TOP, FACE_BOTTOM, FACE_X, FACE_Y = range(4)
_SHADE = np.array([1.0, 0.55, 0.82, 0.68], np.float32)  # directional light per face
SKY_ZENITH = np.array([118, 160, 232], np.float32)
SKY_HORIZON = np.array([186, 210, 245], np.float32)  # also the fog colour
# rows of the packed per-ray march state (float32), compacted together with one take
_T, _C, _D, _ABSINV, _INV, _BINV, _ORIGIN, _IDS, _ROWS = 0, 1, 4, 7, 10, 13, 16, 19, 20


def _noise(rng: np.random.Generator, amount: float) -> np.ndarray:
    return 1.0 + rng.uniform(-amount, amount, (TEX, TEX))


def block_textures() -> np.ndarray:
    """RGB texture per (block, face, u, v) as float32 (N_BLOCKS, 4, TEX, TEX, 3), before shading.

    ``v`` runs up the block on side faces. Fixed seed: the look never depends on the env's RNG.
    """
    rng = np.random.default_rng(12345)
    tex = np.zeros((W.N_BLOCKS, 4, TEX, TEX, 3), np.float32)

    def solid(block: int, face: int | slice, rgb: tuple[float, float, float], amount: float) -> None:
        tex[block, face] = np.array(rgb, np.float32) * _noise(rng, amount)[..., None]

    dirt, grass = (134, 96, 67), (96, 160, 56)
    solid(W.DIRT, slice(None), dirt, 0.12)
    solid(W.GRASS, slice(None), dirt, 0.12)
    solid(W.GRASS, FACE_TOP, grass, 0.1)
    for face in (FACE_X, FACE_Y):  # grass sides: green fringe on top of dirt
        tex[W.GRASS, face, :, TEX - 2 :] = np.array(grass, np.float32) * _noise(rng, 0.1)[:, :2, None]
    solid(W.STONE, slice(None), (128, 128, 128), 0.15)
    solid(W.BEDROCK, slice(None), (58, 58, 58), 0.45)
    solid(W.BARRIER, slice(None), tuple(SKY_HORIZON), 0.0)
    # logs: bark stripes along v on the sides, rings on the cut faces
    u = np.arange(TEX)[:, None]
    stripes = 1.0 + 0.18 * np.sin(u * 2.1 + rng.uniform(0, 6, (TEX, 1))) * np.ones((1, TEX))
    ring = np.hypot(*np.meshgrid(np.arange(TEX) - 3.5, np.arange(TEX) - 3.5, indexing="ij"))
    rings = 1.0 + 0.12 * np.cos(ring * 2.2)
    tex[W.OAK_LOG, FACE_X] = np.array((128, 86, 46), np.float32) * (stripes * _noise(rng, 0.08))[..., None]
    tex[W.OAK_LOG, FACE_Y] = tex[W.OAK_LOG, FACE_X]
    birch = np.full((TEX, TEX), 1.0) * _noise(rng, 0.05)
    birch[rng.random((TEX, TEX)) < 0.16] = 0.25  # the black dashes of birch bark
    tex[W.BIRCH_LOG, FACE_X] = np.array((218, 214, 204), np.float32) * birch[..., None]
    tex[W.BIRCH_LOG, FACE_Y] = tex[W.BIRCH_LOG, FACE_X]
    for log in W.LOG_BLOCKS:
        for face in (FACE_TOP, FACE_BOTTOM):
            tex[log, face] = np.array((176, 142, 88), np.float32) * rings[..., None]
    for leaves, rgb in ((W.OAK_LEAVES, (52, 112, 34)), (W.BIRCH_LEAVES, (98, 140, 62))):
        pattern = _noise(rng, 0.15)
        pattern[rng.random((TEX, TEX)) < 0.22] = 0.55  # dark gaps between the leaves
        tex[leaves] = np.array(rgb, np.float32) * pattern[..., None]
    return tex


def color_table() -> np.ndarray:
    """int16 (N_BLOCKS * 4 * TEX * TEX, 3) RGB lookup table indexed by (block, face, texel), shaded."""
    tex = block_textures() * _SHADE[None, :, None, None, None]
    return tex.reshape(-1, 3).clip(0, 255).round().astype(np.int16)


def sky_table(levels: int = 256) -> np.ndarray:
    """Sky RGB by ray height, int16 (levels, 3) over dir_z in [-1, 1]: pale at and below the
    horizon, bluer toward the zenith. Distant blocks fade into exactly this colour (fog), so the
    view-distance edge is invisible."""
    dir_z = np.linspace(-1.0, 1.0, levels)
    t = np.clip((dir_z + 0.05) / 1.05, 0, 1)[:, None] ** 0.6
    return (SKY_HORIZON * (1 - t) + SKY_ZENITH * t).round().astype(np.int16)


def camera_rays(height: int, width: int, fov_deg: float, aspect: float) -> np.ndarray:
    """Unit ray directions in camera space (forward, right, up), shape (3, height*width).

    `fov_deg` is vertical (Minecraft's convention); `aspect` = horizontal/vertical extent of the
    view, independent of the pixel grid, so a 128x128 frame shows what a 360x640 frame resized to
    128x128 shows.
    """
    tan_v = np.tan(np.radians(fov_deg) / 2)
    up = (1 - (np.arange(height) + 0.5) / height * 2) * tan_v
    right = ((np.arange(width) + 0.5) / width * 2 - 1) * tan_v * aspect
    r, u = np.meshgrid(right, up)
    cam = np.stack([np.ones_like(r), r, u]).reshape(3, -1)
    return (cam / np.linalg.norm(cam, axis=0)).astype(np.float32)


def view_basis(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """3x3 matrix whose columns are the world-space forward, right and up vectors.

    Yaw 0 looks along +y and grows turning right (toward +x); pitch > 0 looks down (MineRL).
    """
    y, p = np.radians(yaw_deg), np.radians(pitch_deg)
    fwd = np.array([np.sin(y) * np.cos(p), np.cos(y) * np.cos(p), -np.sin(p)])
    right = np.array([np.cos(y), -np.sin(y), 0.0])
    return np.stack([fwd, right, np.cross(right, fwd)], axis=1)


class Renderer:
    """Renders ``(height, width, 3)`` uint8 frames of a `VoxelWorld` from an eye position."""

    def __init__(
        self,
        height: int,
        width: int,
        fov_deg: float = 70.0,
        aspect: float = 16 / 9,
        view_distance: float = 20.0,
    ) -> None:
        if height < 1 or width < 1:
            raise ValueError(f"render size must be positive, got {(height, width)}")
        if not 4.0 <= view_distance <= 200.0:
            raise ValueError(f"view_distance must be in [4, 200] blocks, got {view_distance}")
        self.height, self.width, self.view_distance = height, width, float(view_distance)
        self.fov_deg, self.aspect = float(fov_deg), float(aspect)
        self.cam = camera_rays(height, width, fov_deg, aspect)
        self.lut = color_table()
        # worst case (grazing rays): about one cell per jump, as a plain DDA
        self.max_iters = int(2 * self.view_distance)
        fog_start = 0.6 * self.view_distance  # fog ramps from here to the view distance
        self._fog_scale = FOG_ONE / (self.view_distance - fog_start)
        self._fog_offset = fog_start * self._fog_scale
        n = self.n = height * width
        f32, i32 = np.float32, np.int32
        # why: every per-frame array is preallocated; fresh large arrays cost page faults
        # name -> (*shape, dtype): the scratch buffers, allocated once per renderer
        shapes: dict[str, tuple[Any, ...]] = {
            # per view (cached while the camera does not turn)
            "dirs": (3, n, f32), "inv": (3, n, f32), "absinv": (3, n, f32), "up": (3, n, bool),
            "up_key": (n, i32), "sky": (n, 3, np.int16),
            # per frame
            "binv": (3, n, f32), "hit": (3, n, f32),
            "p": (3, n, f32), "p2": (3, n, f32), "kf": (n, f32), "kf2": (n, f32), "te": (n, f32), "te2": (n, f32), "idx_f": (n, f32), "i64": (n, np.intp),
            "ok": (n, bool), "ids": (n, f32),
            # shading
            "t_enter": (3, n, f32), "t_hit": (n, f32), "q": (3, n, i32), "fog": (n, f32),
            "block": (n, i32), "key": (n, i32), "tmp": (n, i32), "lut_idx": (n, i32),
            "rgb": (n, 3, np.int16), "diff": (n, 3, np.int16), "weight": (n, 1, np.int16),
            "is_y": (n, bool), "is_z": (n, bool),
        }  # fmt: skip
        self._b: dict[str, np.ndarray] = {k: np.empty(v[:-1], v[-1]) for k, v in shapes.items()}
        self._b["ids"][...] = np.arange(n)
        self._state = [np.empty((_ROWS, n), f32) for _ in range(2)]
        self._view: tuple[float, float] | None = None

    @property
    def dirs(self) -> np.ndarray:
        """World-space unit ray directions (3, n) of the last rendered view."""
        return self._b["dirs"]

    # --- ray set-up ------------------------------------------------------------------------------

    def _setup_view(self, yaw: float, pitch: float) -> None:
        """Per-view ray directions and their reciprocals (cached while the camera is still)."""
        if self._view == (yaw, pitch):
            return
        b = self._b
        dirs, inv = b["dirs"], b["inv"]
        np.matmul(view_basis(yaw, pitch).astype(np.float32), self.cam, out=dirs)
        np.greater_equal(dirs, 0, out=b["up"])
        # a zero component gets a huge finite reciprocal (never the nearest plane, no inf * 0)
        np.copyto(inv, dirs)
        inv[inv == 0] = 1e-18
        np.divide(1, inv, out=inv)
        np.abs(inv, out=b["absinv"])
        np.multiply(b["up"][2], 4 * TEX**3, out=b["up_key"])
        level = ((dirs[2] + 1) * ((len(_SKY) - 1) / 2)).astype(np.intp)
        _SKY.take(level, axis=0, out=b["sky"])
        self._view = (yaw, pitch)

    # --- the ray march ---------------------------------------------------------------------------

    def trace(self, world: W.VoxelWorld, eye: np.ndarray, yaw: float, pitch: float) -> np.ndarray:
        """March every pixel's ray; returns the cell each ray ended in, (3, n) float32 coordinates.

        Each iteration jumps a ray to the exit of the empty boxes that the distance fields
        guarantee around its cell (k = 1: the next cell, as a DDA step), so open air costs a few
        iterations instead of one per cell. A ray ends in a solid cell, or in an air cell when it
        passed the view distance.
        """
        self._setup_view(float(yaw), float(pitch))
        b = self._b
        eye = np.asarray(eye, np.float64)
        eye32 = eye.astype(np.float32)[:, None]
        # plane offsets: exit plane of axis a = cell_a + (k - 1) * sign_a + up_a
        np.subtract(b["up"], eye32, out=b["binv"])
        b["binv"] *= b["inv"]
        st, other = self._state
        st[_T] = 0
        st[_C : _C + 3] = np.floor(eye).astype(np.float32)[:, None]
        st[_D : _D + 3] = b["dirs"]
        st[_ABSINV : _ABSINV + 3] = b["absinv"]
        st[_INV : _INV + 3] = b["inv"]
        st[_BINV : _BINV + 3] = b["binv"]
        # landing point = origin + t * dir, where the origin is the eye nudged along every axis's
        # direction of travel: the exit axis surely crosses its plane (float32-safe), the others
        # move by a negligible _NUDGE (a ray passing that close to an edge may take the corner)
        np.subtract(b["up"], np.float32(0.5), out=st[_ORIGIN : _ORIGIN + 3])
        st[_ORIGIN : _ORIGIN + 3] *= 2 * _NUDGE
        st[_ORIGIN : _ORIGIN + 3] += eye32
        st[_IDS] = b["ids"]
        strides = world.strides.astype(np.float32)
        jump, flat_jump, hit = world.jump, world.flat_jump, b["hit"]
        cap, cnt = np.float32(self.view_distance), self.n
        b["i64"].fill(int(np.floor(eye) @ world.strides))

        def views(st: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
            """The first `n` rays of every state row and scratch buffer (sliced once per compaction)."""
            rows: tuple[np.ndarray, ...] = (
                st[_T, :n],
                st[_C : _C + 3, :n],
                st[_D : _D + 3, :n],
                st[_INV : _INV + 3, :n],
            )
            rows += (st[_BINV : _BINV + 3, :n], st[_ABSINV : _ABSINV + 3, :n], st[_ORIGIN : _ORIGIN + 3, :n])
            scratch = (b["kf"][:n], b["kf2"][:n], b["te"][:n], b["te2"][:n], b["p"][:, :n], b["p2"][:, :n])
            return rows + scratch + (b["idx_f"][:n], b["i64"][:n], b["ok"][:n])

        t, c, d, inv, binv, absinv, origin, kf, kf2, te, te2, p, p2, idx_f, i64, ok = views(st, cnt)
        for it in range(self.max_iters):
            # Two empty boxes around each ray's cell, from the distance fields (k - 1 gathered): a
            # cube (open air, sky) and a square in the cell's own layer (rays skimming the ground).
            # The farther of their exits is safe. Exit plane of axis a: (cell + up - eye + (k-1) sign) / dir;
            # a solid cell (k = 0) gives planes behind the ray, so the max with t keeps it in place.
            jump.take(i64, mode="clip", out=kf)
            flat_jump.take(i64, mode="clip", out=kf2)
            np.multiply(c, inv, out=p)
            p += binv  # the cell's own exit planes (k = 1)
            np.multiply(absinv[:2], kf2, out=p2[:2])
            p2[:2] += p[:2]
            np.minimum(p2[0], p2[1], out=te2)
            np.minimum(te2, p[2], out=te2)  # the square keeps the cell's own z planes
            np.multiply(absinv, kf, out=p2)
            p += p2
            np.minimum(p[0], p[1], out=te)
            np.minimum(te, p[2], out=te)
            np.maximum(te, te2, out=te)
            np.maximum(te, t, out=t)
            np.multiply(d, t, out=p)
            p += origin
            np.floor(p, out=c)
            np.matmul(strides, c, out=idx_f)
            np.copyto(i64, idx_f, casting="unsafe")
            if it % _CHECK_EVERY != _CHECK_EVERY - 1:
                continue
            np.less(t, cap, out=ok)
            ok &= kf >= 0  # kf is the cell before this jump: a solid one stays put
            alive_n = int(np.count_nonzero(ok))
            if alive_n == 0:
                break
            if alive_n < _COMPACT_BELOW * cnt:  # why: compaction costs about one pass; only when many ended
                hit[:, st[_IDS, :cnt].astype(np.intp)] = c
                keep = np.flatnonzero(ok)
                np.take(st[:, :cnt], keep, axis=1, out=other[:, :alive_n], mode="clip")
                b["i64"][:alive_n] = i64[keep]
                st, other, cnt = other, st, alive_n
                t, c, d, inv, binv, absinv, origin, kf, kf2, te, te2, p, p2, idx_f, i64, ok = views(st, cnt)
        hit[:, st[_IDS, :cnt].astype(np.intp)] = st[_C : _C + 3, :cnt]
        return hit

    # --- shading ---------------------------------------------------------------------------------

    def render(
        self,
        world: W.VoxelWorld,
        eye: np.ndarray,
        yaw: float,
        pitch: float,
        target: int | None = None,
        progress: float = 0.0,
    ) -> np.ndarray:
        """A frame (height, width, 3) uint8 (a new array); the `target` cell (flat index) is
        drawn cracked by `progress` in [0, 1]."""
        cells = self.trace(world, eye, yaw, pitch)
        b = self._b
        np.matmul(world.strides.astype(np.float32), cells, out=b["idx_f"])
        np.copyto(b["i64"], b["idx_f"], casting="unsafe")
        block = b["block"]
        np.copyto(block, world.flat.take(b["i64"]))
        # entry distance = the latest of the hit cell's near planes; its axis is the face hit
        eye32 = np.asarray(eye, np.float32)[:, None]
        t_enter, t_hit = b["t_enter"], b["t_hit"]
        np.subtract(1, b["up"], out=t_enter)
        t_enter -= eye32
        t_enter += cells
        t_enter *= b["inv"]
        np.maximum(t_enter[0], t_enter[1], out=t_hit)
        np.maximum(t_hit, t_enter[2], out=t_hit)
        # the hit point in texels: floor((eye + t * dir) * TEX) mod TEX, per axis
        p, q = b["p"], b["q"]
        np.multiply(b["dirs"], t_hit, out=p)
        p += eye32
        p *= TEX
        np.copyto(q, p, casting="unsafe")
        q &= TEX - 1
        # (hit axis code, q) -> face * TEX^2 + texel by a small table; code: 0 x, 1 y, 2 z, +4 up
        key, tmp = b["key"], b["tmp"]
        np.equal(t_enter[1], t_hit, out=b["is_y"])
        np.equal(t_enter[2], t_hit, out=b["is_z"])
        np.multiply(b["is_z"], 2 * TEX**3, out=key)
        key += b["up_key"]
        np.multiply(b["is_y"], TEX**3, out=tmp)
        key += tmp
        np.multiply(q[0], TEX * TEX, out=tmp)
        key += tmp
        np.multiply(q[1], TEX, out=tmp)
        key += tmp
        key += q[2]
        lut_idx = b["lut_idx"]
        _FACE_TEXEL.take(key, out=lut_idx)
        np.multiply(block, 4 * TEX * TEX, out=tmp)
        lut_idx += tmp
        # fog weight in 1/FOG_ONE: 0 near, FOG_ONE at the view distance and for sky pixels (rays
        # that ended in air, i.e. hit nothing within the view distance, or on the barrier)
        fog = b["fog"]
        np.multiply(t_hit, np.float32(self._fog_scale), out=fog)
        fog -= np.float32(self._fog_offset)
        np.clip(fog, 0, FOG_ONE, out=fog)
        np.copyto(key, fog, casting="unsafe")
        sky = _SKY_OF_BLOCK.take(block, out=tmp)
        sky &= FOG_ONE
        np.maximum(key, sky, out=key)
        rgb = b["rgb"]
        self.lut.take(lut_idx, axis=0, out=rgb)
        if target is not None and progress > 0:
            self._crack(rgb, int(target), float(progress))
        # colour = base + (sky - base) * fog, int16 fixed point (|diff| * FOG_ONE < 2**15)
        weight, diff = b["weight"], b["diff"]
        np.copyto(weight[:, 0], key, casting="unsafe")
        np.subtract(b["sky"], rgb, out=diff)
        diff *= weight
        diff >>= FOG_SHIFT
        rgb += diff
        return rgb.astype(np.uint8).reshape(self.height, self.width, 3)

    def _crack(self, rgb: np.ndarray, target: int, progress: float) -> None:
        """Darken a growing share of the target block's texels, like Minecraft's crack overlay."""
        b = self._b
        where = np.flatnonzero(b["i64"] == target)
        if where.size == 0:
            return
        q = b["q"][:, where]
        on_x = ~(b["is_y"][where] | b["is_z"][where])
        u = np.where(on_x, q[1], q[0])
        v = np.where(b["is_z"][where], q[1], q[2])
        sel = where[_CRACK_ORDER[u, v] < progress]
        rgb[sel] = rgb[sel] * 9 // 20


def _face_texel_table() -> np.ndarray:
    """(axis code, qx, qy, qz) -> face * TEX^2 + texel; code 0: x face, 1: y, 2/3: z, +4: ray going up.

    The two in-face coordinates are (y, z) on x faces, (x, z) on y faces, (x, y) on z faces.
    """
    code, qx, qy, qz = np.meshgrid(np.arange(8), *(np.arange(TEX),) * 3, indexing="ij")
    axis = np.minimum(code & 3, 2)
    up = code >= 4
    face = np.select([axis == 0, axis == 1, up], [FACE_X, FACE_Y, FACE_BOTTOM], FACE_TOP)
    u = np.where(axis == 0, qy, qx)
    v = np.where(axis == 2, qy, qz)
    return (face * TEX * TEX + u * TEX + v).astype(np.int32).reshape(-1)


_FACE_TEXEL = _face_texel_table()
_SKY = sky_table()
_SKY_OF_BLOCK = np.array([-1 if b in (W.AIR, W.BARRIER) else 0 for b in range(W.N_BLOCKS)], np.int32)
_CRACK_ORDER = np.random.default_rng(7).random((TEX, TEX)) * 0.9  # texel -> progress at which it cracks
