"""Test doubles: small fake envs and a faithful fake of the MineRL 1.0 API (tests only)."""
