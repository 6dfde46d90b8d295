"""EventBridge Scheduler's schedules: expressions and when they fire (pure, no I/O)."""
