"""Benchmarks and the reliability suite, one package a make target runs with `python -m`:
`jobs`, `growth`, `api`, `capacity`, `providers` and `reliability`; what several share is in
`common`. Speed is measured here, never asserted in tests."""
