"""`make reliability` (`python -m bench.reliability`): faults under load on its own embedded
PostgreSQL, one scenario a module; `make bench-capacity` drives scenario 7's hosts."""
