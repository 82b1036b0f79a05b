"""Examples that consume schedopt schedules in real training loops (see ``examples/README.md``)."""
