"""Scenario 4 of `bench.reliability`: bad input. schemathesis generates requests for every
operation of /api/schema/ (positive and negative data); every answer must be below 500 and
match the schema. Then hand-made malformed bodies, oversized bodies and wrong content types."""

import json
import warnings
from collections import Counter

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from bench.reliability_faults import Result
from bench.reliability_http import make_actor

CHECKS = [not_a_server_error, response_schema_conformance]


def fuzz_operation(operation, mode, base: str, headers: dict, examples: int, sink: dict) -> None:
    """Send up to `examples` generated cases of one operation; record, never raise."""
    strategy = operation.as_strategy(generation_mode=mode)

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case) -> None:
        try:
            response = case.call(base_url=base, headers=headers, timeout=30)
        except requests.RequestException as error:
            sink["errors"].append(f"{operation.label}: {error!r}")
            return
        sink["cases"] += 1
        sink["statuses"][response.status_code // 100 * 100] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except Exception as failure:  # noqa: BLE001 - a check failed: record it
            kind = "5xx" if response.status_code >= 500 else "schema"
            sink[kind].append(
                f"{operation.label} [{mode.value}] {response.status_code}: "
                f"{case.as_curl_command(headers=headers)} -> {response.text[:300]!r}"
                f" ({str(failure).strip().splitlines()[0][:200]})"
            )

    run()


def fuzz(base: str, cfg) -> tuple[dict, int]:
    """Run schemathesis over every operation; return the sink and the number of operations."""
    rider, staff = make_actor("rider", "fuzz"), make_actor("staff", "fuzz")
    schema = schemathesis.openapi.from_url(base + "/api/schema/?format=json", timeout=30)
    sink = {
        "cases": 0,
        "statuses": Counter(),
        "5xx": [],
        "schema": [],
        "errors": [],
        "unsatisfiable": [],
    }
    operations = [result.ok() for result in schema.get_all_operations()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for operation in operations:
            who = staff if operation.path.startswith("/api/ops/") else rider
            headers = {"Authorization": f"Token {who.token}"}
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    fuzz_operation(operation, mode, base, headers, cfg.fuzz_examples, sink)
                except Unsatisfiable:  # e.g. no way to make a parameterless call invalid
                    sink["unsatisfiable"].append(f"{operation.label} [{mode.value}]")
    return sink, len(operations)


MALFORMED = [
    ("malformed JSON", "application/json", b'{"pickup": {"lat": 1,'),
    ("not an object", "application/json", b"[1, 2, 3]"),
    ("JSON null", "application/json", b"null"),
    ("deeply nested", "application/json", b"[" * 100_000 + b"]" * 100_000),
    ("invalid UTF-8", "application/json", b'{"pickup": "\xff\xfe"}'),
    ("NaN", "application/json", b'{"pickup": {"lat": NaN, "lng": 1}, "dropoff": 1}'),
    (
        "huge number",
        "application/json",
        b'{"pickup": {"lat": 1e999999, "lng": 1}, "dropoff": {"lat": 1, "lng": 1}}',
    ),
    (
        "oversized body",
        "application/json",
        json.dumps({"pickup": {"lat": 1, "lng": 1}, "pad": "x" * 300_000}).encode(),
    ),
    ("text/plain", "text/plain", b"pickup=1"),
    ("form-encoded", "application/x-www-form-urlencoded", b"pickup=1&dropoff=2"),
    ("multipart", "multipart/form-data; boundary=xx", b"--xx\r\n\r\n--xx--\r\n"),
    ("xml", "application/xml", b"<ride/>"),
]
TARGETS = ["/api/rides", "/api/auth/register", "/api/auth/token", "/api/drivers/me/location"]


def malformed(base: str) -> tuple[int, list[str]]:
    """Every malformed request answers 4xx with the JSON error shape."""
    rider, driver = make_actor("rider", "malformed"), make_actor("driver", "malformed")
    failures, sent = [], 0
    for path in TARGETS:
        who = driver if "drivers" in path else rider
        for what, content_type, body in MALFORMED:
            headers = {"Content-Type": content_type, "Authorization": f"Token {who.token}"}
            response = requests.post(base + path, data=body, headers=headers, timeout=60)
            sent += 1
            shape = response.headers.get("Content-Type", "").startswith("application/json") and (
                "error" in response.json()
            )
            if not 400 <= response.status_code < 500 or not shape:
                failures.append(
                    f"{what} -> POST {path}: {response.status_code} {response.text[:150]!r}"
                )
    return sent, failures


def bad_input(base: str, cfg) -> Result:
    result = Result("4. bad input")
    sink, operations = fuzz(base, cfg)
    sent, failures = malformed(base)
    result.load = (
        f"{sink['cases']} schemathesis cases over {operations} operations "
        f"+ {sent} malformed requests"
    )
    result.faults = "generated valid and invalid inputs, malformed bodies, wrong content types"
    result.errors_5xx = len(sink["5xx"]) + sum(" 5" in f.split(":")[1][:4] for f in failures)
    statuses = ", ".join(f"{k // 100}xx {v}" for k, v in sorted(sink["statuses"].items()))
    result.notes.append(f"schemathesis answers: {statuses}")
    if sink["unsatisfiable"]:
        result.notes.append("no invalid input possible: " + ", ".join(sink["unsatisfiable"]))
    if sink["cases"] < cfg.fuzz_min_cases:
        result.fail(f"only {sink['cases']} generated cases (< {cfg.fuzz_min_cases})")
    for kind in ("5xx", "schema", "errors"):
        if sink[kind]:
            result.fail(f"{len(sink[kind])} {kind} finding(s); first: {sink[kind][0]}")
            result.notes.extend(f"  {kind}: {item}" for item in sink[kind][1:6])
    for failure in failures:
        result.fail(failure)
    return result
