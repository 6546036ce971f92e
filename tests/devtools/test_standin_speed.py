"""The stand-ins made as slow as the providers on demand: a latency on every API request, answered
concurrently; Stripe's rate above which it answers 429 with `Retry-After`; and both switched at
runtime or set by the environment when run standalone."""

import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import stripe

from bimride.jobs.engine import ratelimit
from devtools.stripe_standin import StripeStandin
from devtools.supervisor import Process, free_port, wait_http
from payments import stripe_client
from tests.conftest import wait_until

STRIPE_AUTH = {"Authorization": "Bearer sk_test_standin"}


def timed(call) -> tuple[float, requests.Response]:
    started = time.monotonic()
    response = call()
    return time.monotonic() - started, response


def at_once(calls: int, call) -> list[tuple[float, requests.Response]]:
    with ThreadPoolExecutor(max_workers=calls) as pool:
        return list(pool.map(lambda _: timed(call), range(calls)))


def stripe_get(standin: StripeStandin, path: str = "/v1/customers/cus_missing"):
    return requests.get(f"{standin.api_base}{path}", headers=STRIPE_AUTH, timeout=30)


def test_stripe_answers_each_request_after_its_latency_and_many_at_once():
    with StripeStandin(latency=1.0) as standin:
        answers = at_once(8, lambda: stripe_get(standin))
        assert [r.status_code for _, r in answers] == [404] * 8
        assert min(took for took, _ in answers) >= 1.0
        assert standin.peak_in_flight == 8  # all eight waited out their latency together
        assert standin.in_flight == 0


def test_the_email_stand_ins_answer_each_send_after_their_latency_and_many_at_once(
    email_standin,
):
    email_standin.latency = 1.0
    url = f"http://127.0.0.1:{email_standin.port}{email_standin.send_path}"
    answers = at_once(6, lambda: requests.post(url, data=b"{}", timeout=30))
    assert [r.status_code for _, r in answers] == [401] * 6  # no credentials: still as slow
    assert min(took for took, _ in answers) >= 1.0
    assert email_standin.peak_in_flight == 6


def test_stripe_past_its_rate_answers_429_with_retry_after_and_does_nothing():
    with StripeStandin(rate=3) as standin:
        body = {"email": "r@example.com"}
        url = f"{standin.api_base}/v1/customers"
        answers = [requests.post(url, data=body, headers=STRIPE_AUTH, timeout=10) for _ in range(5)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
        refused = answers[3]
        assert refused.headers["Retry-After"] == "1"
        error = refused.json()["error"]
        assert (error["type"], error["code"]) == ("invalid_request_error", "rate_limit")
        assert len(standin.customers) == 3 and standin.rate_limited == 2
        # the window slides: within a second one more is admitted
        wait_until(lambda: stripe_get(standin).status_code == 404, timeout=5)


@pytest.mark.django_db
def test_the_sdk_hears_a_rate_limit_and_the_product_pauses_stripe(stripe_standin):
    stripe_standin.rate = 1
    stripe_client.customer_create(rider_id=1, email="r@example.com", name="R", key="customer:1")
    with pytest.raises(ratelimit.ProviderBusy, match="stripe answered 429: paused for 1s"):
        stripe_client.customer_create(rider_id=2, email="s@example.com", name="S", key="customer:2")
    with pytest.raises(stripe.RateLimitError) as caught:
        stripe_client.client().v1.customers.retrieve("cus_missing")
    assert caught.value.headers["Retry-After"] == "1"


def test_stripes_latency_and_rate_are_switched_over_http():
    with StripeStandin() as standin:
        control = f"{standin.api_base}/_standin"
        answer = requests.post(f"{control}/latency", json={"seconds": 0.25}, timeout=5)
        assert answer.status_code == 200 and standin.latency == 0.25
        answer = requests.post(f"{control}/rate", json={"per_second": 100}, timeout=5)
        assert answer.json() == {"latency": 0.25, "rate": 100} and standin.rate == 100
        for path, body in (("latency", {"seconds": -1}), ("rate", {}), ("latency", {"s": 1})):
            assert requests.post(f"{control}/{path}", json=body, timeout=5).status_code == 400
        state = requests.get(f"{control}/state", timeout=5).json()
        assert (state["latency"], state["rate"], state["rate_limited"]) == (0.25, 100, 0)
        requests.post(f"{control}/rate", json={"per_second": 0}, timeout=5)
        assert standin.rate == 0  # unlimited again


def test_the_email_stand_ins_latency_is_switched_over_http(email_standin):
    control = f"http://127.0.0.1:{email_standin.port}/_standin"
    answer = requests.post(f"{control}/latency", json={"seconds": 2}, timeout=5)
    assert answer.status_code == 200 and email_standin.latency == 2.0
    assert requests.get(f"{control}/messages", timeout=5).json()["latency"] == 2.0
    bad = requests.post(f"{control}/latency", json={"seconds": "soon"}, timeout=5)
    assert bad.status_code == 400 and email_standin.latency == 2.0


@pytest.mark.parametrize(
    ("module", "env", "state_path", "expected"),
    [
        (
            "devtools.stripe_standin",
            {"STRIPE_STANDIN_LATENCY": "0.3", "STRIPE_STANDIN_RATE": "7"},
            "/_standin/state",
            {"latency": 0.3, "rate": 7},
        ),
        (
            "devtools.postmark_standin",
            {"EMAIL_STANDIN_LATENCY": "2"},
            "/_standin/messages",
            {"latency": 2.0},
        ),
        (
            "devtools.sendgrid_standin",
            {"EMAIL_STANDIN_LATENCY": "0.5"},
            "/_standin/messages",
            {"latency": 0.5},
        ),
    ],
)
def test_standalone_stand_ins_take_their_speed_from_the_environment(
    module, env, state_path, expected
):
    port = free_port()
    process = Process(module, [sys.executable, "-m", module, "--port", str(port)], env)
    try:
        wait_http(f"http://127.0.0.1:{port}{state_path}", 30, process=process)
        state = requests.get(f"http://127.0.0.1:{port}{state_path}", timeout=5).json()
        assert {key: state[key] for key in expected} == expected
    finally:
        assert process.stop(grace=5), f"{module} did not stop on SIGTERM"


def test_without_the_environment_the_standalone_stripe_stand_in_is_fast(monkeypatch):
    monkeypatch.delenv("STRIPE_STANDIN_LATENCY", raising=False)
    monkeypatch.delenv("STRIPE_STANDIN_RATE", raising=False)
    port = free_port()
    command = [sys.executable, "-m", "devtools.stripe_standin", "--port", str(port)]
    process = Process("stripe-standin", command)
    try:
        wait_http(f"http://127.0.0.1:{port}/_standin/state", 30, process=process)
        state = requests.get(f"http://127.0.0.1:{port}/_standin/state", timeout=5).json()
        assert (state["latency"], state["rate"]) == (0, 0)
    finally:
        assert process.stop(grace=5)
