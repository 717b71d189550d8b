"""Benchmarks: multissd against the book's own code, measured in one run on one machine.

Run ``python -m multissd.bench`` (see :mod:`multissd.bench.__main__`); what each worker measures
is in :mod:`multissd.bench.cases`. The latest results live in ``benchmarks/results`` and
``docs/performance.md``.
"""
