"""VPT-format demonstrations: reader and recorder."""
