"""`make bench-api` (`python -m bench.api`): the ride flow under a steady open-loop load, this
release against a baseline; its setup and load generator also run `make bench-providers`' ride
flow."""
