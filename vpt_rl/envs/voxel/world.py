"""The voxel world: block ids, the block grid, and procedural terrain + tree generation.

Coordinates: the grid is ``blocks[x, y, z]`` with ``z`` up; a cell ``(i, j, k)`` spans
``[i, i+1) x [j, j+1) x [k, k+1)`` in continuous coordinates. The playable area is surrounded by
a one-cell ring of ``BARRIER`` (solid, drawn as sky) and capped by a ``BARRIER`` layer a few cells
above the highest block, so rays and the agent never leave the array; ``z = 0`` is bedrock.
Blocks can only be removed, never added, so the cap stays valid for the whole episode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# --- blocks --------------------------------------------------------------------------------------

AIR, GRASS, DIRT, STONE, BEDROCK, OAK_LOG, OAK_LEAVES, BIRCH_LOG, BIRCH_LEAVES, BARRIER = range(10)
N_BLOCKS = 10
BLOCK_NAMES: tuple[str, ...] = (
    "air",
    "grass_block",
    "dirt",
    "stone",
    "bedrock",
    "oak_log",
    "oak_leaves",
    "birch_log",
    "birch_leaves",
    "barrier",
)
LOG_BLOCKS: tuple[int, ...] = (OAK_LOG, BIRCH_LOG)
LEAF_BLOCKS: tuple[int, ...] = (OAK_LEAVES, BIRCH_LEAVES)

#: block -> inventory item it drops when broken (MineRL item names); leaves drop nothing.
DROPS: dict[int, str] = {
    GRASS: "dirt",
    DIRT: "dirt",
    STONE: "cobblestone",
    OAK_LOG: "oak_log",
    BIRCH_LOG: "birch_log",
}
#: the inventory this world can fill (the observation's ``inventory`` keys)
ITEMS: tuple[str, ...] = ("oak_log", "birch_log", "dirt", "cobblestone")

#: Caps (cells) of the two distance fields the ray caster jumps through: empty cubes around a cell
#: (sky, open air) and empty squares within the cell's own layer (rays skimming the ground). Larger
#: caps skip more per jump but cost more to update; beyond these the measured gain was nil.
FIELD_CAP = 4
FLAT_FIELD_CAP = 8

#: Attack ticks needed to break each block by hand; None = unbreakable. Logs use the env's
#: ``log_break_ticks``. Ratios loosely follow Minecraft's hand-breaking times (leaves and dirt are
#: quick, logs slow); stone is unbreakable because by hand it drops nothing in Minecraft.
DEFAULT_BREAK_TICKS: dict[str, int | None] = {
    "grass_block": 3,
    "dirt": 3,
    "stone": None,
    "bedrock": None,
    "oak_leaves": 2,
    "birch_leaves": 2,
    "barrier": None,
}


@dataclass(frozen=True)
class WorldParams:
    """Procedural generation knobs (all exposed as env kwargs; see docs/environments.md)."""

    world_size: int = 64  # playable area is world_size x world_size columns
    ground_height: int = 10  # mean height of the grass surface above bedrock
    terrain_amplitude: float = 2.5  # +- height variation of the smooth terrain (0 = flat)
    tree_density: float = 0.012  # trees per grass column (64 x 64 x 0.012 ~ 49 trees)
    birch_fraction: float = 0.3  # share of birch trees (white trunks) among the trees
    trunk_height: tuple[int, int] = (4, 6)  # inclusive range of log blocks per trunk
    trunk_width: int = 1  # 1 = Minecraft oak; 2 = 2x2 trunks (4 logs per layer, easier target)
    trees_near_spawn: int = 2  # at least this many trunks within `spawn_radius` of the spawn point
    spawn_radius: float = 8.0  # blocks; "a trunk within 8 blocks of the spawn point"
    spawn_facing_tree: bool = False  # start looking at the nearest trunk instead of a random yaw

    def validate(self) -> None:
        """Raise ValueError naming the bad field."""
        if not 16 <= self.world_size <= 512:
            raise ValueError(f"world_size must be in [16, 512], got {self.world_size}")
        if not 4 <= self.ground_height <= 40:
            raise ValueError(f"ground_height must be in [4, 40], got {self.ground_height}")
        if not 0 <= self.terrain_amplitude <= self.ground_height - 3:
            raise ValueError(
                f"terrain_amplitude must be in [0, ground_height - 3], got {self.terrain_amplitude}"
            )
        if not 0 <= self.tree_density <= 0.1:
            raise ValueError(f"tree_density must be in [0, 0.1], got {self.tree_density}")
        if not 0 <= self.birch_fraction <= 1:
            raise ValueError(f"birch_fraction must be in [0, 1], got {self.birch_fraction}")
        lo, hi = self.trunk_height
        if not 1 <= lo <= hi <= 12:
            raise ValueError(
                f"trunk_height must be (lo, hi) with 1 <= lo <= hi <= 12, got {self.trunk_height}"
            )
        if self.trunk_width not in (1, 2):
            raise ValueError(f"trunk_width must be 1 or 2, got {self.trunk_width}")
        if not 0 <= self.trees_near_spawn <= 8:
            raise ValueError(f"trees_near_spawn must be in [0, 8], got {self.trees_near_spawn}")
        if not 3 <= self.spawn_radius <= self.world_size / 2 - 4:
            raise ValueError(f"spawn_radius must be in [3, world_size/2 - 4], got {self.spawn_radius}")


@dataclass(frozen=True)
class Trunk:
    """A generated tree: lowest log cell ``(x, y, z)`` (the -x/-y corner for 2x2 trunks)."""

    x: int
    y: int
    z: int
    height: int
    width: int
    log: int  # OAK_LOG or BIRCH_LOG

    @property
    def center(self) -> tuple[float, float]:
        """Horizontal centre of the trunk in continuous coordinates."""
        return self.x + self.width / 2, self.y + self.width / 2


class VoxelWorld:
    """The block grid plus the derived arrays the renderer and physics read.

    Change blocks only through `set_block`, which keeps the derived arrays in step.
    """

    def __init__(self, blocks: np.ndarray) -> None:
        if blocks.dtype != np.int8 or blocks.ndim != 3:
            raise ValueError(f"blocks must be an int8 (X, Y, Z) array, got {blocks.dtype} {blocks.shape}")
        self.blocks = np.ascontiguousarray(blocks)
        self.shape = self.blocks.shape
        self.strides = np.array([self.shape[1] * self.shape[2], self.shape[2], 1], np.int64)
        self.flat = self.blocks.reshape(-1)  # a view: set_block writes through
        # Chebyshev distances (in cells, capped) to the nearest non-air cell, in 3D and within each
        # layer: the ray caster jumps through the empty cube / square they guarantee (0 = solid)
        solid = self.blocks != AIR
        self.field = chebyshev_field(solid, FIELD_CAP)
        self.flat_field = chebyshev_field(solid, FLAT_FIELD_CAP, axes=(0, 1))
        # the same minus one, as flat float32: what the ray caster gathers (saves two ops per jump)
        self.jump = (self.field.astype(np.float32) - 1).reshape(-1)
        self.flat_jump = (self.flat_field.astype(np.float32) - 1).reshape(-1)

    def copy(self) -> VoxelWorld:
        """An independent copy."""
        return VoxelWorld(self.blocks.copy())

    def set_block(self, x: int, y: int, z: int, block: int) -> None:
        """Set one cell and its derived entries."""
        self.blocks[x, y, z] = block
        self._refresh((x, y, z), FIELD_CAP, (0, 1, 2), self.field, self.jump)
        self._refresh((x, y, z), FLAT_FIELD_CAP, (0, 1), self.flat_field, self.flat_jump)

    def _refresh(
        self, cell: tuple[int, int, int], cap: int, axes: tuple[int, ...], field: np.ndarray, jump: np.ndarray
    ) -> None:
        """Update a distance field after `cell` changed. Only distances within cap - 1 of the cell
        (along `axes`) can change, and they depend only on cells within cap of those: recompute
        that sub-box and write back its centre."""
        along = np.array([a in axes for a in range(3)])
        c, size = np.array(cell), np.array(self.shape)
        lo, hi = np.maximum(c - along * (2 * cap - 1), 0), np.minimum(c + along * (2 * cap - 1) + 1, size)
        ilo, ihi = np.maximum(c - along * (cap - 1), 0), np.minimum(c + along * (cap - 1) + 1, size)
        sub = chebyshev_field(self.blocks[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] != AIR, cap, axes)
        a, b = ilo - lo, ihi - lo
        box = (slice(ilo[0], ihi[0]), slice(ilo[1], ihi[1]), slice(ilo[2], ihi[2]))
        field[box] = sub[a[0] : b[0], a[1] : b[1], a[2] : b[2]]
        jump.reshape(self.shape)[box] = field[box] - 1

    def is_solid(self, x: int, y: int, z: int) -> bool:
        """Everything but air is solid (leaves too, as in Minecraft); outside = solid."""
        sx, sy, sz = self.shape
        if not (0 <= x < sx and 0 <= y < sy and 0 <= z < sz):
            return True
        return bool(self.blocks[x, y, z] != AIR)

    def raycast(self, origin: np.ndarray, direction: np.ndarray, max_dist: float) -> tuple | None:
        """First non-air cell along a ray (plain scalar DDA; the reference for the renderer).

        Returns ``(cell (x, y, z), block, face_axis, t)`` where ``t`` is the distance to the entry
        point and ``face_axis`` the axis crossed to enter the cell (-1 if the origin is inside a
        block), or None when nothing is hit within `max_dist`.
        """
        cell = [int(np.floor(c)) for c in origin]
        if self.blocks[cell[0], cell[1], cell[2]] != AIR:
            return tuple(cell), int(self.blocks[cell[0], cell[1], cell[2]]), -1, 0.0
        step, t_max, t_delta = [0, 0, 0], [np.inf] * 3, [np.inf] * 3
        for a in range(3):
            d = float(direction[a])
            if d > 0:
                step[a], t_delta[a] = 1, 1.0 / d
                t_max[a] = (cell[a] + 1 - origin[a]) / d
            elif d < 0:
                step[a], t_delta[a] = -1, -1.0 / d
                t_max[a] = (cell[a] - origin[a]) / d
        while True:
            a = min(range(3), key=t_max.__getitem__)
            t = t_max[a]
            if t > max_dist:
                return None
            cell[a] += step[a]
            t_max[a] += t_delta[a]
            block = int(self.blocks[cell[0], cell[1], cell[2]])
            if block != AIR:
                return tuple(cell), block, a, t


def chebyshev_field(solid: np.ndarray, cap: int, axes: tuple[int, ...] = (0, 1, 2)) -> np.ndarray:
    """int8 Chebyshev distance, in cells along `axes`, from each cell to the nearest `solid` cell
    (other axes held fixed), capped at `cap`.

    Distance r means every cell within r - 1 cells along `axes` is empty (a (2r - 1)^3 cube for all
    three axes, a square within the cell's layer for (0, 1)). Built by growing the solid set one
    cell at a time with a separable dilation.
    """
    field = np.full(solid.shape, cap, np.int8)
    field[solid] = 0
    reach = solid
    for r in range(1, cap):
        grown = reach.copy()
        for axis in axes:
            src = grown.copy()
            lead = [slice(None)] * 3
            lag = [slice(None)] * 3
            lead[axis], lag[axis] = slice(1, None), slice(None, -1)
            grown[tuple(lead)] |= src[tuple(lag)]
            grown[tuple(lag)] |= src[tuple(lead)]
        field[grown & ~reach] = r
        reach = grown
    return field


# --- generation ----------------------------------------------------------------------------------


def _value_noise(rng: np.random.Generator, size: int, cell: int) -> np.ndarray:
    """Smooth noise in [-1, 1]: a random lattice every `cell` columns, bilinearly interpolated."""
    n = size // cell + 2
    lattice = rng.uniform(-1.0, 1.0, (n, n))
    coords = np.arange(size) / cell
    i0 = coords.astype(np.int64)
    f = coords - i0
    f = f * f * (3 - 2 * f)  # smoothstep, so slopes have no kinks at lattice lines
    rows = lattice[i0] * (1 - f)[:, None] + lattice[i0 + 1] * f[:, None]  # (size, n)
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :]


def _height_map(rng: np.random.Generator, p: WorldParams) -> np.ndarray:
    """Grass surface height per column (the number of solid blocks under it)."""
    noise = _value_noise(rng, p.world_size, 16) + 0.5 * _value_noise(rng, p.world_size, 8)
    noise /= max(1e-6, float(np.abs(noise).max()))
    return np.rint(p.ground_height + p.terrain_amplitude * noise).astype(np.int64)


def _plant(blocks: np.ndarray, rng: np.random.Generator, trunk: Trunk) -> None:
    """Write one tree: a trunk of logs and a Minecraft-oak-like canopy that never replaces logs."""
    leaves = OAK_LEAVES if trunk.log == OAK_LOG else BIRCH_LEAVES
    w, top = trunk.width, trunk.z + trunk.height - 1
    for dz, radius in ((-1, 2), (0, 2), (1, 1), (2, 1)):
        z = top + dz
        x0, x1 = trunk.x - radius, trunk.x + w - 1 + radius
        y0, y1 = trunk.y - radius, trunk.y + w - 1 + radius
        layer = blocks[x0 : x1 + 1, y0 : y1 + 1, z]
        keep = np.ones(layer.shape, bool)
        corners = [(0, 0), (0, -1), (-1, 0), (-1, -1)]
        for cx, cy in corners:  # ragged corners: always cut on the top layer, by chance below
            if dz == 2 or rng.random() < 0.5:
                keep[cx, cy] = False
        layer[keep & (layer == AIR)] = leaves
    blocks[trunk.x : trunk.x + w, trunk.y : trunk.y + w, trunk.z : top + 1] = trunk.log


def _random_trunk(rng: np.random.Generator, p: WorldParams, heights: np.ndarray, x: int, y: int) -> Trunk:
    """A trunk standing on the surface at playable column (x, y) (0-based, before padding)."""
    w = p.trunk_width
    base = int(heights[x : x + w, y : y + w].max())
    log = BIRCH_LOG if rng.random() < p.birch_fraction else OAK_LOG
    height = int(rng.integers(p.trunk_height[0], p.trunk_height[1] + 1)) + (1 if log == BIRCH_LOG else 0)
    return Trunk(x + 1, y + 1, base, height, w, log)  # +1: the barrier ring


def _free_spot(occupied: np.ndarray, x: int, y: int, w: int) -> bool:
    """No other trunk within 2 columns of a w x w trunk at (x, y) (playable coordinates)."""
    n = occupied.shape[0]
    if x < 3 or y < 3 or x + w > n - 3 or y + w > n - 3:
        return False
    return not occupied[x - 2 : x + w + 2, y - 2 : y + w + 2].any()


def generate(rng: np.random.Generator, p: WorldParams) -> tuple[VoxelWorld, list[Trunk], np.ndarray, float]:
    """Generate a world from `rng`: returns (world, trunks, spawn feet position, spawn yaw in degrees).

    Terrain: stone, three layers of dirt, grass on top of a smooth height map; trees at
    `tree_density` with at least two free columns between trunks; the spawn is a free column
    near the centre, and `trees_near_spawn` trunks are planted within `spawn_radius` of it
    if chance placed fewer (so every seed has a trunk within reach of a short walk).
    """
    p.validate()
    n = p.world_size
    heights = _height_map(rng, p)
    occupied = np.zeros((n, n), bool)
    trunks: list[Trunk] = []
    w = p.trunk_width
    wanted = int(round(p.tree_density * n * n))
    for _ in range(4 * wanted):  # rejection sampling; crowded densities stop short of `wanted`
        if len(trunks) == wanted:
            break
        x, y = (int(v) for v in rng.integers(0, n - w + 1, 2))
        if _free_spot(occupied, x, y, w):
            occupied[x : x + w, y : y + w] = True
            trunks.append(_random_trunk(rng, p, heights, x, y))

    # spawn: a column near the centre that no trunk or canopy overhangs too low
    c = n // 2
    sx, sy = c, c
    for _ in range(50):
        sx, sy = (int(v) for v in rng.integers(c - 4, c + 5, 2))
        if not occupied[max(0, sx - 1) : sx + 2, max(0, sy - 1) : sy + 2].any():
            break
    spawn_xy = np.array([sx + 1.5, sy + 1.5])  # padded coordinates, column centre

    def near(t: Trunk) -> bool:
        return float(np.hypot(*(np.array(t.center) - spawn_xy))) <= p.spawn_radius

    n_near, tries = sum(near(t) for t in trunks), 0
    while n_near < p.trees_near_spawn and tries < 200:
        tries += 1
        angle, dist = rng.uniform(0, 2 * np.pi), rng.uniform(2.5, p.spawn_radius - w)
        x = int(np.floor(sx + 0.5 + dist * np.cos(angle)))
        y = int(np.floor(sy + 0.5 + dist * np.sin(angle)))
        clear_of_spawn = (
            max(abs(x - sx), abs(y - sy)) >= 2 and max(abs(x + w - 1 - sx), abs(y + w - 1 - sy)) >= 2
        )
        if clear_of_spawn and _free_spot(occupied, x, y, w):
            occupied[x : x + w, y : y + w] = True
            trunk = _random_trunk(rng, p, heights, x, y)
            trunks.append(trunk)
            n_near += near(trunk)

    top = int(heights.max()) + p.trunk_height[1] + 1 + 3 + 4  # trunk (+1 birch), canopy, headroom
    blocks = np.zeros((n + 2, n + 2, top + 1), np.int8)
    z = np.arange(top + 1)[None, None, :]
    h = heights[:, :, None]
    inner = blocks[1:-1, 1:-1]
    inner[z < h] = DIRT
    inner[z < h - 3] = STONE
    inner[z == h - 1] = GRASS
    inner[:, :, 0] = BEDROCK
    for trunk in trunks:
        _plant(blocks, rng, trunk)
    blocks[0, :, :] = blocks[-1, :, :] = BARRIER
    blocks[:, 0, :] = blocks[:, -1, :] = BARRIER
    blocks[:, :, top] = BARRIER

    spawn_z = float(heights[sx, sy])
    while blocks[sx + 1, sy + 1, int(spawn_z)] != AIR or blocks[sx + 1, sy + 1, int(spawn_z) + 1] != AIR:
        spawn_z += 1  # a low canopy overhead: stand on it (rare; chance placement only)
    spawn = np.array([spawn_xy[0], spawn_xy[1], spawn_z])
    if p.spawn_facing_tree and trunks:
        nearest = min(trunks, key=lambda t: np.hypot(*(np.array(t.center) - spawn_xy)))
        dx, dy = np.array(nearest.center) - spawn_xy
        yaw = float(np.degrees(np.arctan2(dx, dy)))  # yaw 0 looks along +y, 90 along +x
    else:
        yaw = float(rng.uniform(-180.0, 180.0))
    return VoxelWorld(blocks), trunks, spawn, yaw
