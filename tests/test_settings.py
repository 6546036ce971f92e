"""Settings: production fails fast on missing variables and passes `check --deploy` when
complete; a value of the wrong type is refused by name; the database connection prepares the
statements it runs again."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from bimride.settings.env import Env
from rides.models import Ride

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, **env: str | None) -> subprocess.CompletedProcess:
    """`manage.py` in production, with `env` on top of this process's environment (None unsets)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "ALLOWED_HOSTS")}
    given = {**clean, "DJANGO_ENV": "production", **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={name: value for name, value in given.items() if value is not None},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_refuses_to_start_without_its_variables():
    result = manage("check", DATABASE_URL="")
    assert result.returncode != 0
    assert (
        "DJANGO_ENV=production needs these environment variables: "
        "SECRET_KEY, DATABASE_URL, ALLOWED_HOSTS"
    ) in result.stderr


def test_without_a_database_url_the_settings_say_how_to_set_one():
    result = manage("check", DJANGO_ENV="development", DATABASE_URL=None)
    assert result.returncode != 0
    assert "ImproperlyConfigured: DATABASE_URL is not set. `make run` and `make test` set it." in (
        result.stderr
    )
    assert 'export DATABASE_URL="$(make -s db-start)"' in result.stderr


def test_a_database_url_that_is_not_postgresql_is_refused_without_showing_it():
    result = manage("check", DJANGO_ENV="development", DATABASE_URL="mysql://u:hunter2@h/db")
    assert result.returncode != 0
    assert "DATABASE_URL is not a PostgreSQL URL like postgresql://" in result.stderr
    assert "hunter2" not in result.stderr


def test_production_refuses_to_talk_to_the_stripe_stand_in():
    result = manage(
        "check",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="api.bimride.example",
        POSTMARK_SERVER_TOKEN="pm-server-token",
        ANYMAIL_WEBHOOK_SECRET="hooks:secret",
    )
    assert result.returncode != 0
    assert "needs STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET" in result.stderr


def test_production_settings_pass_the_deployment_checks():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL=os.environ["DATABASE_URL"],
        ALLOWED_HOSTS="api.bimride.example",
        POSTMARK_SERVER_TOKEN="pm-server-token",
        ANYMAIL_WEBHOOK_SECRET="hooks:secret",
        STRIPE_API_KEY="sk_live_example",
        STRIPE_WEBHOOK_SECRET="whsec_example",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def reader(**environ: str) -> Env:
    found = Env()
    found.ENVIRON = environ
    return found


@pytest.mark.parametrize(
    ("read", "value", "refusal"),
    [
        (lambda env: env.int("LIMIT", 5), "five", "LIMIT='five' is not a whole number."),
        (lambda env: env.float("LIMIT", 0.5), "half", "LIMIT='half' is not a number."),
        (lambda env: env.bool("LIMIT", False), "maybe", "LIMIT='maybe' is not true or false"),
        (
            lambda env: env.dict("LIMIT", cast={"value": float}, default={}),
            "stripe",
            "LIMIT='stripe' is not name=value pairs",
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_its_variable(read, value, refusal):
    with pytest.raises(ImproperlyConfigured) as refused:
        read(reader(LIMIT=value))
    assert str(refused.value).startswith(refusal)


@pytest.mark.parametrize(
    ("value", "read"),
    [("1", True), ("yes", True), ("On", True), ("2", True), ("0", False), ("off", False)]
    + [("no", False), ("FALSE", False), ("", False)],
)
def test_booleans_are_read_as_before(value, read):
    assert reader(FLAG=value).bool("FLAG", not read) is read


@pytest.mark.parametrize("value", ["stripe=100,email=20", "stripe=100;email=20"])
def test_typed_pairs_are_read_separated_by_commas_or_semicolons(value):
    pairs = reader(LIMITS=value).dict("LIMITS", cast={"value": float}, default={})
    assert pairs == {"stripe": 100.0, "email": 20.0}


def test_the_settings_refuse_a_value_of_the_wrong_type_by_name():
    result = manage("check", DJANGO_ENV="development", LOGIN_FAILURE_LIMIT="five")
    assert result.returncode != 0
    assert "LOGIN_FAILURE_LIMIT='five' is not a whole number." in result.stderr


@pytest.mark.django_db
@pytest.mark.skipif(settings.DB_TRANSACTION_POOLER, reason="behind a pooler nothing is prepared")
def test_a_statement_run_again_on_a_connection_is_prepared_once():
    def prepared() -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement FROM pg_prepared_statements")
            return [row[0] for row in cursor.fetchall() if "rides_ride" in row[0]]

    for ride_id in (1, 2, 3):
        list(Ride.objects.filter(pk=ride_id))
    assert len(prepared()) == 1  # parameters bound by the server: one statement, three calls


SHOW_DATABASE_SETTINGS = """
import json, sys
sys.argv[1:] = sys.argv[1:] or ["runserver"]
from bimride import settings
db = settings.DATABASES["default"]
print(json.dumps({"cursors": db["DISABLE_SERVER_SIDE_CURSORS"], "options": db["OPTIONS"]}))
"""


@pytest.mark.parametrize("process", ["runserver", "qcluster"])
def test_behind_a_transaction_pooler_no_session_state_is_relied_on(process):
    env = {**os.environ, "DB_TRANSACTION_POOLER": "1"}
    for name in ("DB_PREPARE_THRESHOLD", "JOB_ASYNC_COMMIT"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-c", SHOW_DATABASE_SETTINGS, process],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["cursors"] is True  # no WITH HOLD cursor outlives its transaction
    unwanted = {"prepare_threshold", "server_side_binding", "options"}  # startup `options`
    assert not unwanted & set(shown["options"])
