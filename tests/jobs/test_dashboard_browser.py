"""Ops staff sign in with their second factor and retry a dead letter from the queue dashboard,
in a real headless Chromium.

The app runs in pytest-django's `live_server` thread; Playwright drives Debian's Chromium
(`/usr/bin/chromium`, which `.ci/run` installs when missing). Database work happens before and
after the browser session, never inside it: Playwright's sync API runs an event loop in this
thread, and Django refuses ORM calls while one is running.
"""

import contextlib
import re
from pathlib import Path

import pytest
from django.conf import settings

from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.runner import run_job
from bimride.jobs.models import DeadLetter, Job
from tests.conftest import give_authenticator, totp_now
from tests.factories import PASSWORD, UserFactory

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # skipped below, with the reason
    sync_playwright = None

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parents[2] / ".data" / "dashboard.png"
TIMEOUT_MS = 10_000  # every Playwright wait (launch, navigation, locators, expect) is bounded
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.django_db(transaction=True)  # the live server thread reads our rows


@pytest.fixture
def chromium():
    """Open a page in a fresh headless Chromium: `with chromium() as page: ...`."""
    if not CHROMIUM.exists():
        pytest.skip(f"no browser: {CHROMIUM} is missing (apt-get install chromium)")
    if sync_playwright is None:
        pytest.skip("the playwright package is missing (pip install -r requirements.txt)")
    expect.set_options(timeout=TIMEOUT_MS)

    @contextlib.contextmanager
    def open_page():
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                headless=True,
                chromium_sandbox=False,
                args=CHROMIUM_ARGS,
                timeout=TIMEOUT_MS,
            )
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.set_default_timeout(TIMEOUT_MS)
                page.set_default_navigation_timeout(TIMEOUT_MS)
                yield page
            finally:
                browser.close()

    return open_page


@pytest.fixture
def staff_user(otp_required):
    """Staff enrolled in the second factor, with production's rule that they must use it."""
    user = UserFactory(is_staff=True, is_superuser=True)
    user.device = give_authenticator(user)
    return user


@pytest.fixture
def dead_letter() -> DeadLetter:
    job = enqueue("tests.declined", {"n": 1}, idempotency_key="declined:1")
    run_job(job.pk)
    return DeadLetter.objects.get(job=job)


def test_ops_staff_retry_a_dead_letter_from_the_dashboard(
    chromium, live_server, staff_user, dead_letter
):
    url = live_server.url
    with chromium() as page:
        page.goto(f"{url}/admin/login/?next=/admin/jobs/job/dashboard/")
        page.fill("#id_username", staff_user.username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        expect(page.locator(".errornote")).to_contain_text("Enter the 6-digit code")
        page.fill("#id_password", PASSWORD)
        page.fill("#id_otp_token", totp_now(staff_user.device))
        page.click("input[type=submit]")
        expect(page).to_have_url(f"{url}/admin/jobs/job/dashboard/")

        expect(page.locator("tr.queue-row")).to_have_count(len(settings.JOB_QUEUES))
        default = page.locator('tr.queue-row[data-queue="default"] td')
        expect(default.nth(7)).to_have_text("1")  # open dead letters
        link = page.locator("a.dead-type")
        expect(link).to_have_text("tests.declined")
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

        link.click()
        expect(page).to_have_url(re.compile(r"/admin/jobs/deadletter/\?"))
        page.click(f'#result_list a[href*="/admin/jobs/deadletter/{dead_letter.pk}/change/"]')
        expect(page.locator(".field-error_message")).to_contain_text("Your card was declined.")
        expect(page.get_by_role("link", name="Retry with edited payload")).to_be_visible()

        page.go_back()
        page.check(f'input[name="_selected_action"][value="{dead_letter.pk}"]')
        page.select_option(
            "select[name=action]", label="Retry the selected dead letters (same payload)"
        )
        page.click("button[name=index]")  # "Go"
        expect(page.locator(".messagelist .success")).to_have_text("1 done.")

        page.goto(f"{url}/admin/jobs/deadletter/{dead_letter.pk}/change/")
        retried_as = page.locator(".field-retry_link a").inner_text()
        new_job_id = int(retried_as.removeprefix("#"))
        page.goto(f"{url}/admin/jobs/job/?state=queued")
        row = page.locator(f'#result_list tr:has(a[href*="/admin/jobs/job/{new_job_id}/change/"])')
        expect(row.locator(".field-name")).to_have_text("tests.declined")

        page.goto(f"{url}/admin/jobs/job/dashboard/")
        expect(default.nth(1)).to_have_text("1")  # queued
        expect(page.locator("a.dead-type")).to_have_count(0)

    dead_letter.refresh_from_db()
    assert dead_letter.resolution == DeadLetter.Resolution.RETRIED
    assert dead_letter.resolved_by == staff_user
    assert dead_letter.retry_job_id == new_job_id
    new_job = Job.objects.get(pk=new_job_id)
    assert (new_job.name, new_job.state, new_job.payload) == ("tests.declined", "queued", {"n": 1})
