"""Benchmarks of the selfdistill solver and chain (issue 5): ``python -m benchmarks``."""
