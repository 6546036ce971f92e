"""The loopback HTTP server the provider stand-ins (Stripe, Postmark, SendGrid) are built on."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a thread per request, so slow answers overlap
    request_queue_size = 128  # a burst of connections waits to be accepted, none is refused


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 (port 0: any free port), run in a daemon thread.

    Every request gets its own thread: a stand-in made slow (its `latency`) answers many
    callers at once, as the provider would, instead of one after another."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], host: str, port: int):
        self._server = _Server((host, port), handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def serve_until_interrupted(self, banner: str) -> None:
        """Run in the foreground (`python -m …_standin`) until Ctrl-C."""
        self.start()
        print(banner, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            self.stop()


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the test and `make run` output free of access logs."""

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's signature
        pass

    def send_json(self, status: int, headers: dict, data: dict | None) -> None:
        """Answer `status` with `headers` and `data` as JSON (no body when `data` is empty)."""
        payload = json.dumps(data, default=str).encode() if data else b""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def json_handler(answer, control) -> type[BaseHTTPRequestHandler]:
    """A stand-in's request handler: a POST goes to `answer(path, body, headers)`, which returns
    (status, headers, data) or None when the path is not one of its API's; `/_standin/…` and
    every GET go to `control(path, body)`, which returns (status, data). JSON both ways."""

    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            answered = answer(self.path, body, self.headers)
            if answered is None and self.path.startswith("/_standin/"):
                status, data = control(self.path, body)
                answered = status, {}, data
            self.send_json(*(answered or (404, {}, {"error": "not found"})))

        def do_GET(self) -> None:  # noqa: N802
            status, data = control(self.path, b"")
            self.send_json(status, {}, data)

    return Handler
