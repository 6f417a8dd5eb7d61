"""Test-time adaptation: TSD and the baselines."""
