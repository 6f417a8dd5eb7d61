"""The bad-input corpus: hostile and broken checkpoints, datasets and snapshots (generated)."""
