"""Fake MineRL 1.0 (tests only; see ../README.md). Importing it registers the gym ids, as the
real package does."""

from minerl.herobraine.env_specs import register_all as _register_all

__version__ = "1.0.2-fake"

_register_all()
