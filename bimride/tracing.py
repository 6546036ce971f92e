"""Trace ids and job context for every log line: one id follows a ride from request to jobs."""

import contextvars
import json
import logging
import re
import uuid
from contextlib import contextmanager

TRACE_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")
_FIELDS = ("trace_id", "job_id", "job_name", "attempt", "queue")
_EMPTY: dict = {}  # never mutated: log_context() sets a new dict
_context: contextvars.ContextVar[dict] = contextvars.ContextVar("bimride_log_context")


def current_trace_id() -> str:
    return _context.get(_EMPTY).get("trace_id", "")


@contextmanager
def log_context(**fields):
    """Add `fields` (trace_id, job_id, ...) to every log line written inside the block."""
    token = _context.set({**_context.get(_EMPTY), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class TraceMiddleware:
    """Give each request a trace id (a sane `X-Request-ID`, else a new one) and echo it back."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(TRACE_HEADER, "")
        trace_id = incoming if _SANE_ID.match(incoming) else uuid.uuid4().hex
        request.trace_id = trace_id
        with log_context(trace_id=trace_id):
            response = self.get_response(request)
        response[TRACE_HEADER] = trace_id
        return response


class ContextFilter(logging.Filter):
    """Copy the current trace and job context onto each record ("-" where there is none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get(_EMPTY)
        for name in _FIELDS:
            if not hasattr(record, name):
                setattr(record, name, context.get(name, "-"))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for production log pipelines."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({name: getattr(record, name, "-") for name in _FIELDS})
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
