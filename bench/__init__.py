"""Benchmarks of the erpbridge topology on a real broker; `python -m bench.throughput`.

Method and results: docs/benchmarks.md.
"""
