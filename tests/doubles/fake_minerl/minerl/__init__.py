"""Fake MineRL 1.0 (tests only; see ../README.md). Importing it registers the gym ids, as the
real package does. Its version is in the distribution metadata beside it (1.0.0, as a v1.0.2
build reports itself unless MINERL_BUILD_VERSION was set when it was built)."""

from minerl.herobraine.env_specs import register_all as _register_all

_register_all()
