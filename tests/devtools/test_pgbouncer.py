"""Tests of devtools.pgbouncer: a PgBouncer in transaction mode in front of the test database.

Each test owns the pooler it starts (in .data/pgbouncer-<port>) and stops it. Without
pgbouncer, and no way to install it (not root, or no apt-get), they skip, saying why.
"""

import os
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from django.contrib.auth import get_user_model
from psycopg import sql

from devtools.pgbouncer import PgBouncer, PgBouncerError, binary
from tests.conftest import wait_until
from tests.pooler import direct_database_url


@pytest.fixture
def pooler(transactional_db):
    """A PgBouncer (one server connection per pool) in front of the test database."""
    try:
        binary()
    except PgBouncerError as exc:
        pytest.skip(str(exc))
    pooler = PgBouncer(direct_database_url(), pool_size=1)
    pooler.start()
    yield pooler
    pooler.stop()
    assert pooler.pid() is None


def test_queries_reach_the_test_database_through_the_pooler(pooler, rider):
    assert pooler.url.startswith(f"postgresql://{pooler.upstream.user}@127.0.0.1:")
    with pooler.connect() as conn:
        count = conn.execute("SELECT count(*) FROM auth_user WHERE id = %s", [rider.user.pk])
        assert count.fetchone() == (1,)
        assert conn.execute("SELECT current_database()").fetchone()[0] == pooler.upstream.dbname
    assert get_user_model().objects.filter(pk=rider.user.pk).exists()


def test_two_clients_share_one_server_connection_between_transactions(pooler):
    [pool] = [p for p in pooler.admin("SHOW POOLS") if p["database"] == pooler.upstream.dbname]
    assert pool["pool_mode"] == "transaction"
    with pooler.connect() as first, pooler.connect() as second:
        one = first.execute("SELECT pg_backend_pid()").fetchone()
        assert second.execute("SELECT pg_backend_pid()").fetchone() == one


def test_a_session_setting_leaks_to_the_next_client(pooler):
    """What transaction pooling does to `SET`: it stays on the server connection."""
    with pooler.connect() as first, pooler.connect() as second:
        first.execute("SET statement_timeout = '4242ms'")
        assert second.execute("SHOW statement_timeout").fetchone() == ("4242ms",)


def test_after_a_restart_every_connection_drops_and_new_ones_work(pooler):
    port = pooler.port
    old = pooler.connect()
    assert old.execute("SELECT 1").fetchone() == (1,)
    pooler.restart()
    assert pooler.port == port and pooler.pid() is not None
    with pytest.raises(psycopg.OperationalError):
        old.execute("SELECT 1")
    old.close()
    assert wait_until(lambda: pooler.query("SELECT 2") == [(2,)], timeout=10)


def test_closing_a_database_drops_the_server_connections_to_it(pooler):
    with pooler.connect(application_name="pooler-test") as conn:
        conn.execute("SELECT 1")
    mine = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pooler-test'"
    with psycopg.connect(direct_database_url(), autocommit=True) as direct:
        assert direct.execute(mine).fetchone() == (1,)  # idle in the pool
        pooler.close_database(pooler.upstream.dbname)
        wait_until(lambda: direct.execute(mine).fetchone() == (0,), timeout=10)
    assert pooler.query("SELECT 3") == [(3,)]


def test_a_startup_options_parameter_is_refused_not_silently_dropped(pooler):
    """Why workers behind the pooler send no `-c synchronous_commit=off` (settings/database.py)."""
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter: options"):
        pooler.connect(options="-c synchronous_commit=off")


def test_a_listen_through_the_pooler_hears_no_notify(pooler):
    """Why a worker's LISTEN needs a direct connection (or the worker polls)."""
    with pooler.connect() as listener, pooler.connect() as sender:
        listener.execute('LISTEN "pooler_test"')
        sender.execute("NOTIFY pooler_test")
        assert list(listener.notifies(timeout=0.5, stop_after=1)) == []


@pytest.fixture
def role_with_password(transactional_db):
    """A login role with a password on the test server, dropped afterwards."""
    name, password = f"pooler_test_{os.getpid()}", 's3cret pass"word'
    with psycopg.connect(direct_database_url(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(password)
            )
        )
    yield name, password
    with psycopg.connect(direct_database_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_an_upstream_url_with_a_password_is_checked_by_the_pooler(role_with_password):
    try:
        binary()
    except PgBouncerError as exc:
        pytest.skip(str(exc))
    name, password = role_with_password
    parts = urlsplit(direct_database_url())
    netloc = f"{quote(name, safe='')}:{quote(password, safe='')}@{parts.netloc.rpartition('@')[2]}"
    with PgBouncer(urlunsplit(parts._replace(netloc=netloc))) as pooler:
        with psycopg.connect(pooler.url, connect_timeout=5) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (name,)
        wrong = pooler.url.replace(quote(password, safe=""), "wrong")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(wrong, connect_timeout=5)
