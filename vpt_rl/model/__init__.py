"""The VPT network: config, IMPALA CNN, memory transformer, heads, policy and strict weight I/O."""
