"""`make bench-capacity` (`python -m bench.capacity`): what a ride and a job cost the one
PostgreSQL primary, counted on one host as deployed (the hosts of `make reliability`'s
scenario 7)."""
