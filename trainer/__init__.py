"""``gotr1-train``: training and export for GoT-R1 checkpoints (uses gotr1_core, never nodes/)."""
