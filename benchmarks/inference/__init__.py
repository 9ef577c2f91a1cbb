"""Inference benchmark: adapter configurations vs the plain backbone (and vs the ``adapters`` library).

Run ``python -m benchmarks.inference --help`` from the repository root.
"""
