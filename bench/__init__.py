"""Benchmarks, run by `make bench-jobs`; speed is measured here, never asserted in tests."""
