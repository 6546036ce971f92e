"""`make bench-providers` (`python -m bench.providers`): jobs that wait on providers as slow as
Stripe and email, ours beside Celery's threads pool, and the ride flow against a baseline."""
