"""Training: state, optimizer and schedules, losses, the sharded step and the loop."""
