"""Benchmarks of localize: ``python -m benchmarks`` lists them, ``python -m benchmarks NAME ...`` runs them.

Each benchmark is a module ``benchmarks/bench_<name>.py`` (plus ``kill_and_resume.py``) with a
``main()``; each prints its figures in one common line format (``benchmarks.common.report``).
"""
