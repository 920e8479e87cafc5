"""Benchmarks are run by hand (`python3 tests/bench/bench_probes.py`, `python3 tests/bench/bench_pipeline.py`),
never collected by pytest."""

collect_ignore_glob = ["*.py"]
