"""Statements planned for their own parameters, where the ledger's partial indexes matter."""

from contextlib import contextmanager

from django.db import connection, transaction


@contextmanager
def custom_plans():
    """Plan every statement of the block for its parameters. The ORM's statements are prepared
    once a connection has run them DB_PREPARE_THRESHOLD times, and after five executions
    PostgreSQL may keep a generic plan instead: one that cannot use a partial index (`state = $1`
    does not prove `state IN ('queued', ...)`) and guesses how many rows a parameter matches. On
    a ledger of millions of rows either means reading all of it. Opens a transaction (or a
    savepoint in one) and sets `plan_cache_mode` for it only: safe behind a transaction pooler."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        yield
