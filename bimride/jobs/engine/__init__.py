"""The job system's engine: how jobs are declared, stored, pushed, claimed, run and retried."""
