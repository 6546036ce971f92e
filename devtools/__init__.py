"""Development tooling: the embedded database, stand-ins, process supervision, the pooler.

Nothing in the product packages imports from here; `make` targets, tests and benchmarks do.
"""
