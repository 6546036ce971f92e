"""`make bench-jobs` (`python -m bench.jobs`): the job system against plain django-q2 and Celery,
on real workers; its systems and suites also drive `make bench-growth`."""
