"""`make bench-growth` (`python -m bench.growth`): the job path and the ops reads with tens of
millions of rows in the ledger, measured with bench-jobs' systems; and `python -m
bench.growth.migration`, jobs migration 0006 on that ledger."""
