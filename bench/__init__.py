"""Benchmarks: Mnemo's gateways side by side with raw asyncpg running the same SQL.

Run with ``make bench`` (``python -m bench``; ``--quick`` for a short run, ``--help`` for the
counts). Numbers are ratios measured in one run on one server: the machines are noisy.
"""
