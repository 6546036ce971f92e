"""What several benchmarks share: their processes and clean-up, their job types, the provider
call and the Celery app."""
