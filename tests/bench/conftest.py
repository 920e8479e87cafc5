"""Benchmarks are run by hand (`python3 tests/bench/bench_probes.py`), never collected by pytest."""

collect_ignore_glob = ["*.py"]
