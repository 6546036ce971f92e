"""Scenario 4 of `bench.reliability`: bad input. schemathesis runs every one of its checks over
/api/schema/ (examples, coverage, fuzzing, and the stateful phase that follows the schema's
links) as anonymous, a rider, a driver and staff: no answer may be a 5xx or undocumented, valid
input must be accepted and invalid input refused (its negative cases include malformed path
parameters). Then hand-made malformed bodies, oversized bodies and wrong content types, and
malformed ids in every path with a parameter, by every method, as rider, driver and staff,
against this web process (DEBUG off) and one with DEBUG on: each a JSON 404 `not_found`."""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

from bench.reliability.faults import Result
from bench.reliability.http import make_actor
from bench.reliability.procs import ROOT

CONFIG = ROOT / "bench" / "schemathesis.toml"
LOGS = ROOT / ".data" / "reliability-fuzz"
ACTORS = ("anonymous", "rider", "driver", "staff")
# The fuzzing web process: the tracking webhook has its secret, as in production, and the
# throttles are far above the fuzzer's pace so that the logic behind them is what gets tested
# (scenario 5 and the generated-client test prove the throttles themselves).
WEB_ENV = {
    "ANYMAIL_WEBHOOK_SECRET": "fuzz-user:fuzz-webhook-secret",
    "THROTTLE_ANON": "100000/min",
    "THROTTLE_AUTH": "100000/min",
    "THROTTLE_RIDE_CREATE": "100000/min",
}


def _wfc(tmp: Path) -> Path:
    """A Web Fuzzing Commons auth file: two of each role, so that schemathesis's
    object_level_authorization check replays one rider's (or driver's) reads as the other."""
    entries = []
    for role in ("rider", "driver", "staff"):
        for n in ("", "2"):
            token = make_actor(role, f"fuzz{n}").token
            header = {"name": "Authorization", "value": f"Token {token}"}
            entries.append({"name": role + n, "fixedHeaders": [header]})
    path = tmp / "wfc.json"
    path.write_text(json.dumps({"schemaVersion": "0.2.0", "auth": entries}))
    return path


def _config(tmp: Path, actor: str, wfc: Path) -> Path:
    """bench/schemathesis.toml plus this actor's credentials (none for anonymous)."""
    text = CONFIG.read_text() + "\n[auth]\nauto-signup = false\n"
    if actor != "anonymous":
        text += f"[auth.wfc]\npath = {str(wfc)!r}\nuser = {actor!r}\n"
        if actor != "staff":  # staff see every object, by design
            text += f"peers = {[actor, actor + '2']!r}\n"
    path = tmp / f"schemathesis-{actor}.toml"
    path.write_text(text.replace("'", '"'))
    return path


def run_actor(base: str, actor: str, config: Path, cfg) -> dict:
    """One `schemathesis run` with every check as `actor`; its counts and failures."""
    LOGS.mkdir(parents=True, exist_ok=True)
    report, log = LOGS / f"{actor}.json", LOGS / f"{actor}.txt"
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color"),
        *("run", f"{base}/api/schema/?format=json", "--checks", "all"),
        *("--phases", "examples,coverage,fuzzing,stateful", "-n", str(cfg.fuzz_examples)),
        *("--seed", str(cfg.fuzz_seed), "--workers", "2", "--suppress-health-check", "all"),
        *("--request-timeout", "30", "--report", "json", "--report-json-path", str(report)),
    ]
    with log.open("w") as out:
        # from the config's folder: schemathesis keeps a cache in its working directory
        subprocess.run(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=600,
            check=False,
            cwd=config.parent,
        )
    data = json.loads(report.read_text()) if report.exists() else {}
    cases = data.get("test_cases", {})
    failures = [
        f"{actor}: {f['code']} {f['title']} x{f['count']} on {', '.join(f['operations'])}"
        for f in data.get("failures", [])
    ]
    errors = [f"{actor}: {e}" for e in data.get("errors", [])]
    if not data:
        errors.append(f"{actor}: no report; see {log.relative_to(ROOT)}")
    phases = {name: p["status"] for name, p in data.get("phases", {}).items()}
    return {
        "actor": actor,
        "cases": cases.get("generated", 0),
        "failures": failures,
        "errors": errors,
        "phases": phases,
        "details": _failure_details(log) if failures else [],
    }


def _failure_details(log: Path) -> list[str]:
    """The first lines of each failure in schemathesis's output (operation, check, curl)."""
    lines = log.read_text(errors="replace").splitlines()
    keep = re.compile(r"^_{5,} .* _{5,}$|^- ST\d+|^\s+curl |^\s+(Got|Expected|Invalid) ")
    return [line.strip(" _") for line in lines if keep.search(line)][:20]


def _dead_letters(count: int) -> None:
    """Open dead letters, so that staff's list, retry and discard answer with data."""
    from bench.reliability.jobtypes import NAME
    from bimride.jobs.engine.enqueue import enqueue
    from bimride.jobs.models import DeadLetter, Job

    for n in range(count):
        job = enqueue(NAME, {"n": n})
        Job.objects.filter(pk=job.pk).update(state=Job.State.DEAD)
        DeadLetter.objects.create(
            job=job,
            name=NAME,
            queue=job.queue,
            payload={"n": n},
            error_class="bench.FuzzFailure",
            error_message="Made dead for the fuzzer.",
            attempts=1,
        )


def fuzz(base: str, cfg) -> list[dict]:
    """schemathesis as each actor, one after the other (the web process is shared)."""
    _dead_letters(cfg.fuzz_dead_letters)
    with tempfile.TemporaryDirectory(prefix="bimride-fuzz-") as tmp:
        wfc = _wfc(Path(tmp))
        return [run_actor(base, a, _config(Path(tmp), a, wfc), cfg) for a in ACTORS]


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
# Path parameters no route matches (URL-encoded as a client would send them).
MALFORMED_IDS = [
    "abc",
    "null",
    "null,null",
    "-1",
    "1.5",
    "1e3",
    "0x1f",
    "%20",
    "%00",
    "%E2%80%8B1",  # a zero-width space before the digit
    "%EF%BC%91",  # a full-width 1
    "1%3B2",
    "99999999999999999999",
    "9223372036854775808",
    "true",
]


def is_error_shape(response, code: str) -> bool:
    if not response.headers.get("Content-Type", "").startswith("application/json"):
        return False
    error = response.json().get("error")
    return isinstance(error, dict) and error.get("code") == code and "fields" in error


def malformed_paths(base: str, paths: list[tuple[str, str]]) -> tuple[int, list[str]]:
    """Every malformed id in every parameterised path, by its methods, as each role: 404 in the
    error shape."""
    actors = [make_actor(role, "malformed-path") for role in ("rider", "driver", "staff")]
    failures, sent = [], 0
    for path, method in paths:
        for value in MALFORMED_IDS:
            url = base + re.sub(r"\{[^}]+\}", value, path)
            for actor in actors:
                response = requests.request(
                    method,
                    url,
                    data=b"{}" if method != "GET" else None,
                    headers={
                        "Authorization": f"Token {actor.token}",
                        "Content-Type": "application/json",
                    },
                    timeout=60,
                )
                sent += 1
                if response.status_code != 404 or not is_error_shape(response, "not_found"):
                    failures.append(
                        f"{method} {path} with {value} as {actor.user.username.split('-')[-1]}: "
                        f"{response.status_code} {response.headers.get('Content-Type')} "
                        f"{response.text[:100]!r}"
                    )
    return sent, failures


def parameterised_paths(base: str) -> list[tuple[str, str]]:
    schema = requests.get(base + "/api/schema/?format=json", timeout=60).json()
    return [
        (path, method.upper())
        for path, item in schema["paths"].items()
        if "{" in path
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]


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


def bad_input(procs, cfg) -> Result:
    result = Result("4. bad input")
    _, base = procs.web("web-fuzz", WEB_ENV)
    runs = fuzz(base, cfg)
    sent, failures = malformed(base)
    paths = parameterised_paths(base)
    sent_paths, path_failures = malformed_paths(base, paths)
    _, debug_base = procs.web("web-fuzz-debug", {**WEB_ENV, "DEBUG": "true"}, threads=4)
    sent_debug, debug_failures = malformed_paths(debug_base, paths)
    failures += path_failures + [f"DEBUG on: {f}" for f in debug_failures]
    cases = sum(run["cases"] for run in runs)
    by_actor = ", ".join(f"{run['actor']} {run['cases']}" for run in runs)
    result.load = (
        f"{cases} schemathesis cases ({by_actor}), all checks, 4 phases + {sent} malformed "
        f"bodies + {sent_paths} malformed ids in {len(paths)} operations' paths with DEBUG off "
        f"and {sent_debug} with DEBUG on"
    )
    result.faults = (
        "generated valid and invalid inputs, malformed bodies, wrong content types, malformed "
        "path parameters"
    )
    findings = [f for run in runs for f in run["failures"]]
    result.errors_5xx = sum("ST100" in f or "Server error" in f for f in findings) + sum(
        " 5" in f.split(":")[1][:4] for f in failures
    )
    for run in runs:
        phases = ", ".join(f"{k} {v}" for k, v in run["phases"].items())
        result.notes.append(f"{run['actor']}: {run['cases']} cases; phases: {phases}")
    if cases < cfg.fuzz_min_cases:
        result.fail(f"only {cases} generated cases (< {cfg.fuzz_min_cases})")
    for run in runs:
        for finding in run["failures"] + run["errors"]:
            result.fail(finding)
        result.notes.extend(f"  {run['actor']}: {line}" for line in run["details"])
    for failure in failures:
        result.fail(failure)
    return result
