"""File-system and machine safety: scratch, claims, durable writes, disk guard, live locks, signals, input files, space."""
