"""What staff see and do with the jobs: the admin, the ops API, metrics, alerts and readiness."""
