"""`python -m devtools.run` (what `make run` starts) and the demo data it seeds."""

import contextlib
import os
import signal
import sys
from io import StringIO
from pathlib import Path

import pytest
import requests
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.test import RequestFactory
from rest_framework.authtoken.models import Token

from bimride.jobs.models import Job
from devtools.supervisor import Process, free_port
from rides.models import Driver, Rider
from tests.conftest import database_url, wait_until

ADMIN = {"email": "ops@example.com", "password": "ops-password-for-tests"}


def answers(method: str, url: str, **kwargs) -> bool:
    """Whether the server answers 200 (False while it is not listening yet)."""
    try:
        return requests.request(method, url, timeout=2, **kwargs).status_code == 200
    except requests.ConnectionError:
        return False


def processes() -> dict[int, tuple[int, int, str, str]]:
    """Every process: pid -> (parent pid, session id, state, command line)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                state, ppid, _, sid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:4]
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                table[int(entry.name)] = (int(ppid), int(sid), state, cmdline)
    return table


def qcluster_children(pid: int) -> set[int]:
    """The qcluster processes that pid started (each leads its own session)."""
    return {p for p, (ppid, _, _, cmd) in processes().items() if ppid == pid and "qcluster" in cmd}


def alive_in_sessions(sessions: set[int]) -> set[int]:
    """Live processes in these sessions: a qcluster and everything it forked."""
    return {p for p, (_, sid, state, _) in processes().items() if sid in sessions and state != "Z"}


@pytest.mark.workers
def test_make_run_serves_the_api_and_stops_everything_on_ctrl_c(transactional_db, tmp_path):
    port = free_port()
    env = {
        "DATABASE_URL": database_url(),
        "PORT": str(port),
        "ADMIN_EMAIL": ADMIN["email"],
        "ADMIN_PASSWORD": ADMIN["password"],
        "EMAIL_STANDIN_PORT": str(email_port := free_port()),  # no credentials: the stand-in's
        "STRIPE_API_BASE": f"http://127.0.0.1:{free_port()}",  # the stand-in's
        "STRIPE_STANDIN_STATE": str(tmp_path / "stripe-standin.json"),
        "FCM_STANDIN_PORT": str(fcm_port := free_port()),  # no FCM key: the stand-in's
        "FCM_STANDIN_KEY": str(tmp_path / "fcm-service-account.json"),
    }
    run = Process(
        "run", [sys.executable, "-m", "devtools.run"], env, log=tmp_path / "run.log", log_mode="wb"
    )
    base = f"http://127.0.0.1:{port}"
    clusters: set[int] = set()
    try:
        wait_until(  # migrate, demo data and start-up: slow on a busy two-core machine
            lambda: answers("GET", f"{base}/healthz"),
            timeout=90,
            what=lambda: "healthz; make run said:\n" + (tmp_path / "run.log").read_text()[-3000:],
        )
        assert wait_until(
            lambda: answers("POST", f"{base}/api/auth/token", json=ADMIN),
            timeout=10,
            interval=0.5,  # the token endpoint is throttled
            what="the admin's token",
        )
        clusters = wait_until(
            lambda: len(found := qcluster_children(run.pid)) == 3 and found,
            what="one qcluster per queue",
        )
        assert answers("GET", f"{env['STRIPE_API_BASE']}/_standin/state")
        # The default provider's stand-in got the welcome email of each demo account.
        messages = f"http://127.0.0.1:{email_port}/_standin/messages"
        wait_until(
            lambda: (
                answers("GET", messages) and requests.get(messages, timeout=2).json()["messages"]
            ),
            what="the welcome emails at the Postmark stand-in",
        )

        # Pushes go to the FCM stand-in, and make run says where to see them.
        pushes = f"http://127.0.0.1:{fcm_port}/_standin/messages"
        assert wait_until(lambda: answers("GET", pushes), what="the FCM stand-in")
        assert f"pushes sent: curl {pushes}" in (tmp_path / "run.log").read_text()

        run.process.send_signal(signal.SIGINT)

        assert run.process.wait(timeout=20) == 0, (tmp_path / "run.log").read_text()
        assert "open /admin/access/enrol/" in (tmp_path / "run.log").read_text()
        assert not alive_in_sessions(clusters)
    finally:
        run.stop(grace=20)  # devtools.run stops its children on SIGTERM too
        for pid in clusters:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


@pytest.mark.django_db
def test_seeding_demo_data_twice_creates_nothing_new():
    def counts():
        models = (get_user_model(), Rider, Driver, Token, Job)
        return {model.__name__: model.objects.count() for model in models}

    call_command("seed_demo", stdout=StringIO())
    first = counts()
    call_command("seed_demo", stdout=StringIO())

    assert counts() == first
    assert first["Rider"] >= 2 and first["Driver"] >= 2
    assert first["Job"] < 50
    assert not Driver.objects.filter(available=False).exists()
    assert not Driver.objects.filter(lat__isnull=True).exists()
    request = RequestFactory().post("/api/auth/token")  # axes counts every sign-in by address
    assert authenticate(
        request, username="rider1@demo.bimride.example", password="demo-password-123"
    )
    assert authenticate(
        request, username="driver1@demo.bimride.example", password="demo-password-123"
    )
