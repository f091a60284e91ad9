"""Training algorithms: rollouts, GAE, losses, PPG trainer, behavioural cloning."""
