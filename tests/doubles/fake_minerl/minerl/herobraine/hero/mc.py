"""Item names: a few real ones the tests use, padded to MineRL 1.0's 976 inventory entries."""

_REAL = [
    "acacia_log",
    "birch_log",
    "dark_oak_log",
    "jungle_log",
    "oak_log",
    "spruce_log",
    "acacia_planks",
    "birch_planks",
    "oak_planks",
    "spruce_planks",
    "stick",
    "crafting_table",
    "wooden_pickaxe",
    "cobblestone",
    "stone_pickaxe",
    "furnace",
    "coal",
    "torch",
    "iron_ore",
    "iron_ingot",
    "iron_pickaxe",
    "diamond",
    "diamond_pickaxe",
    "diamond_shovel",
    "dirt",
    "air",
]
ALL_ITEMS = sorted(_REAL + [f"fake_item_{i:03d}" for i in range(976 - len(_REAL))])
assert len(ALL_ITEMS) == 976
