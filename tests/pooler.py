"""Run tests through PgBouncer in transaction-pooling mode: `BIMRIDE_TEST_POOLER=1`.

    make test-pooled PYTEST_ARGS="tests/jobs -x -q"
    BIMRIDE_TEST_POOLER=1 make test PYTEST_ARGS=tests/rides

A pytest plugin (`-p tests.pooler`, in pyproject's addopts), inert unless BIMRIDE_TEST_POOLER is
set. Then, before Django reads its settings, it starts a PgBouncer owned by this test session in
front of DATABASE_URL (or the embedded PostgreSQL) and points DATABASE_URL at it, so the test
process, pytest-django's CREATE/DROP DATABASE, and every `qcluster` a test starts go through the
pooler, with DB_TRANSACTION_POOLER=1 (see bimride/settings/database.py: no server-side prepared
statements, no WITH HOLD cursors, no startup `options`; workers commit asynchronously with
`SET LOCAL` in each transaction). DB_PREPARE_THRESHOLD=2 set on the command line brings
prepared statements back, to see them fail.
BIMRIDE_TEST_DIRECT_DATABASE_URL keeps the upstream's URL for what must bypass the pooler.
"""

import os
from urllib.parse import quote

import pytest

ENABLED = os.environ.get("BIMRIDE_TEST_POOLER", "").lower() not in ("", "0", "false", "no")
DIRECT_URL = "BIMRIDE_TEST_DIRECT_DATABASE_URL"
_pooler = None


@pytest.hookimpl(hookwrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    """Before pytest-django sets Django up (in this same hook): start the pooler."""
    global _pooler
    if ENABLED and _pooler is None:
        from devtools import devdb
        from devtools.pgbouncer import PgBouncer

        upstream = os.environ.get("DATABASE_URL") or devdb.start()
        _pooler = PgBouncer(upstream, pool_size=int(os.environ.get("POOLER_POOL_SIZE", "20")))
        os.environ[DIRECT_URL] = upstream
        os.environ["DATABASE_URL"] = _pooler.start()
        os.environ["DB_TRANSACTION_POOLER"] = "1"
    yield


def pytest_report_header(config):
    if _pooler is not None:
        return f"pooler: PgBouncer ({_pooler.settings['pool_mode']}) at {_pooler.url}"
    return None


def pytest_unconfigure(config):
    global _pooler
    if _pooler is not None:
        _pooler.stop()
        _pooler = None


@pytest.fixture(scope="session", autouse=True)
def _pooler_lets_go_of_the_test_database(request):
    """pytest-django drops the test database at the end; PgBouncer still holds idle server
    connections to it then, and PostgreSQL refuses to drop a database in use. Close them first
    (this teardown runs before django_db_setup's)."""
    if _pooler is None:
        yield
        return
    request.getfixturevalue("django_db_setup")
    yield
    from django.db import connections

    names = {conn.settings_dict["NAME"] for conn in connections.all()}
    connections.close_all()
    for name in names:
        _pooler.close_database(name)


def pooled() -> bool:
    """Whether this test session runs through the pooler."""
    return _pooler is not None


def direct_database_url() -> str:
    """The URL of the test database on the upstream PostgreSQL, bypassing any pooler."""
    from django.db import connection

    from tests.conftest import database_url

    upstream = os.environ.get(DIRECT_URL)
    if not upstream:
        return database_url()
    head, _, rest = upstream.partition("://")
    authority, _, path = rest.partition("/")
    query = path.partition("?")[2]
    name = quote(connection.settings_dict["NAME"], safe="")
    return f"{head}://{authority}/{name}" + (f"?{query}" if query else "")


@pytest.fixture
def session_pooler():
    """The PgBouncer that this session's tests go through (skips when not pooled): a test may
    restart it, or stop and start it, to show what clients see while it is down."""
    if _pooler is None:
        pytest.skip("runs only through the pooler (BIMRIDE_TEST_POOLER=1)")
    yield _pooler
    _pooler.start()  # running again, whatever the test did
