"""Benchmarks: Mnemo side by side with what it competes with, on one server in one run.

``python -m bench`` runs both suites (``make bench``); ``python -m bench messages`` or
``python -m bench checkpoints`` runs one. ``--quick`` for a short run, ``--help`` for the
counts. Numbers are ratios measured in one run on one server: the machines are noisy.
"""
