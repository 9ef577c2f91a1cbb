"""Validation benchmark: the validator's cost against a plain load-and-forward, and a worker's throughput.

Run ``python -m benchmarks.validation --help`` from the repository root.
"""
