"""The generic training engine: loop, schedules, EMA, checkpoints, logging."""
