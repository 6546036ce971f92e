"""A local stand-in for Firebase Cloud Messaging's HTTP v1 API and Google's OAuth token
exchange, for tests and offline development.

BimRide's FCM client (notifications/fcm.py, google-auth + requests) reaches it through settings:
a service account key whose `token_uri` is the stand-in's `/token` (FCM_CREDENTIALS_JSON or
FCM_CREDENTIALS_FILE) and FCM_API_BASE. It answers as Google does:

- `POST /token` (a JWT bearer grant, RS256-signed with the account's key): an access token, or
  400 `invalid_grant` when the signature or the claims are wrong;
- `POST /v1/projects/{project}/messages:send`: 200 `{"name": "projects/…/messages/…"}`; 401
  without a valid access token; 404 `UNREGISTERED` for tokens in `unregistered`; in mode "429"
  a 429 `QUOTA_EXCEEDED` with `Retry-After: retry_after`; in mode "503" a 503 `UNAVAILABLE`;
  in mode "slow" each answer `delay` seconds late. `times` bounds a failing mode: after that
  many failing answers it is "ok" again.

In a test, use it in-process (`FcmStandin().start()`, then `.set_mode("503", times=2)`).
Standalone, `python -m devtools.fcm_standin --port 8027 --key .data/fcm-service-account.json`
runs it until Ctrl-C; `GET /_standin/messages` lists the pushes it accepted (tokens shortened)
and `POST /_standin/mode {"mode": "429", "retry_after": 2, "times": 1}` switches modes.
"""

import argparse
import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from devtools.loopback import LoopbackServer, json_handler

MODES = ("ok", "429", "503", "slow")
PROJECT = "bimride-standin"
CLIENT_EMAIL = "fcm-standin@bimride-standin.iam.gserviceaccount.com"
SEND_SUFFIX = "/messages:send"
ERRORS = {
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials.", None),
    404: ("NOT_FOUND", "Requested entity was not found.", "UNREGISTERED"),
    429: ("RESOURCE_EXHAUSTED", "Quota exceeded for quota metric.", "QUOTA_EXCEEDED"),
    503: ("UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE"),
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument.", "INVALID_ARGUMENT"),
}


@dataclass
class Received:
    """One push the stand-in accepted."""

    name: str
    token: str
    title: str
    body: str
    data: dict
    android: dict
    apns: dict
    at: float = field(default_factory=time.time)

    def shown(self) -> dict:
        """What the control API shows: the token shortened, as a log would."""
        return {**self.__dict__, "token": f"…{self.token[-6:]}"}


_keys: dict[str, str] = {}


def new_private_key() -> str:
    """A fresh RSA key in PEM, as a service account's JSON key holds it (one per process)."""
    if "pem" not in _keys:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _keys["pem"] = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    return _keys["pem"]


def service_account(port: int, private_key: str | None = None) -> dict:
    """A service account JSON key whose token exchange is the stand-in's on `port`."""
    return {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "standin",
        "private_key": private_key or new_private_key(),
        "client_email": CLIENT_EMAIL,
        "client_id": "1",
        "token_uri": f"http://127.0.0.1:{port}/token",
    }


class FcmStandin(LoopbackServer):
    """The server and its state. Thread-safe: its HTTP threads and the test share it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, private_key: str | None = None):
        self.mode = "ok"
        self.times: int | None = None  # failing answers left in the mode, None: unbounded
        self.retry_after = 1
        self.delay = 0.0
        self.unregistered: set[str] = set()  # tokens answered 404 UNREGISTERED
        self.messages: list[Received] = []
        self.refused: dict[int, int] = {}
        self.token_requests = 0
        self._access_tokens: dict[str, float] = {}  # token -> expiry (epoch seconds)
        self._lock = threading.Lock()
        super().__init__(_handler_for(self), host, port)
        self.private_key = private_key or new_private_key()
        self._public_key = serialization.load_pem_private_key(
            self.private_key.encode(), password=None
        ).public_key()

    # --- for tests and `make run` ---------------------------------------------------------------
    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def service_account(self) -> dict:
        return service_account(self.port, self.private_key)

    def settings(self) -> dict[str, str]:
        """The environment that points BimRide's settings at this stand-in."""
        return {
            "FCM_API_BASE": self.api_base,
            "FCM_CREDENTIALS_JSON": json.dumps(self.service_account()),
        }

    def set_mode(self, mode: str, *, times: int | None = None, **options) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        with self._lock:
            self.mode, self.times = mode, times
            self.retry_after = int(options.get("retry_after", self.retry_after))
            self.delay = float(options.get("delay", self.delay))

    def received(self, *, token: str | None = None) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if token is None or m.token == token]

    # --- answering ------------------------------------------------------------------------------
    def exchange(self, body: bytes) -> tuple[int, dict, dict]:
        """The OAuth token endpoint: a JWT bearer grant for an access token."""
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        with self._lock:
            self.token_requests += 1
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return 400, {}, {"error": "unsupported_grant_type"}
        if not self._valid_assertion(form.get("assertion", "")):
            return 400, {}, {"error": "invalid_grant", "error_description": "Invalid JWT."}
        token = f"ya29.standin-{secrets.token_urlsafe(24)}"
        with self._lock:
            self._access_tokens[token] = time.time() + 3600
        return 200, {}, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}

    def _valid_assertion(self, assertion: str) -> bool:
        try:
            header, claims, signature = assertion.split(".")
            self._public_key.verify(
                _unb64(signature),
                f"{header}.{claims}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
            data = json.loads(_unb64(claims))
        except (ValueError, InvalidSignature):
            return False
        now = time.time()
        return (
            data.get("iss") == CLIENT_EMAIL
            and data.get("aud", "").endswith("/token")
            and "firebase.messaging" in data.get("scope", "")
            and data.get("iat", 0) - 300 <= now <= data.get("exp", 0) + 300
        )

    def send(self, path: str, body: bytes, headers) -> tuple[int, dict, dict]:
        """`messages:send`: accept the push, or answer with the mode's error."""
        bearer = headers.get("Authorization", "").removeprefix("Bearer ")
        with self._lock:
            expiry = self._access_tokens.get(bearer, 0)
        if expiry < time.time():
            return self._refuse(401)
        try:
            message = json.loads(body)["message"]
            token = message["token"]
        except (ValueError, KeyError, TypeError):
            return self._refuse(400)
        project = path.removeprefix("/v1/projects/").removesuffix(SEND_SUFFIX)
        with self._lock:
            mode = self._take_mode()
        if mode == "503":
            return self._refuse(503)
        if token in self.unregistered:
            return self._refuse(404)
        if mode == "429":
            return self._refuse(429, {"Retry-After": str(self.retry_after)})
        if mode == "slow":
            time.sleep(self.delay)
        notification = message.get("notification", {})
        received = Received(
            name=f"projects/{project}/messages/0:{secrets.token_hex(8)}",
            token=token,
            title=notification.get("title", ""),
            body=notification.get("body", ""),
            data=message.get("data", {}),
            android=message.get("android", {}),
            apns=message.get("apns", {}),
        )
        with self._lock:
            self.messages.append(received)
        return 200, {}, {"name": received.name}

    def _take_mode(self) -> str:
        """The mode for this answer, counting down a bounded failing mode (call locked)."""
        mode = self.mode
        if mode in ("429", "503") and self.times is not None:
            self.times -= 1
            if self.times <= 0:
                self.mode, self.times = "ok", None
        return mode

    def _refuse(self, status: int, headers: dict | None = None) -> tuple[int, dict, dict]:
        fcm_status, message, code = ERRORS[status]
        error = {"code": status, "message": message, "status": fcm_status}
        if code:
            error["details"] = [
                {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
            ]
        with self._lock:
            self.refused[status] = self.refused.get(status, 0) + 1
        return status, headers or {}, {"error": error}

    def control(self, path: str, body: bytes) -> tuple[int, dict]:
        """The standalone control API: switch modes, read pushes."""
        if path == "/_standin/messages":
            shown = [m.shown() for m in self.received()]
            return 200, {"messages": shown, "refused": self.refused, "mode": self.mode}
        if path == "/_standin/mode":
            data = json.loads(body or b"{}")
            try:
                self.set_mode(
                    data.get("mode", ""),
                    times=data.get("times"),
                    **{k: data[k] for k in ("retry_after", "delay") if k in data},
                )
            except ValueError as error:
                return 400, {"error": str(error)}
            if "unregistered" in data:
                self.unregistered = set(data["unregistered"])
            return 200, {"mode": self.mode}
        return 404, {"error": "not found"}


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _handler_for(standin: FcmStandin) -> type[BaseHTTPRequestHandler]:
    def answer(path: str, body: bytes, headers):
        if path == "/token":
            return standin.exchange(body)
        if path.startswith("/v1/projects/") and path.endswith(SEND_SUFFIX):
            return standin.send(path, body, headers)
        return None

    return json_handler(answer, standin.control)


def ensure_key_file(path: Path, port: int) -> Path:
    """Write a service account key for the stand-in on `port` at `path` (kept across runs, its
    token_uri brought up to date)."""
    private_key = None
    if path.exists():
        private_key = json.loads(path.read_text()).get("private_key")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(service_account(port, private_key), indent=2))
    path.chmod(0o600)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8027)
    parser.add_argument("--key", type=Path, required=True, help="the service account key file")
    args = parser.parse_args()
    key = json.loads(ensure_key_file(args.key, args.port).read_text())["private_key"]
    standin = FcmStandin(port=args.port, private_key=key)
    standin.serve_until_interrupted(
        f"FCM stand-in at {standin.api_base} (FCM_API_BASE={standin.api_base}"
        f" FCM_CREDENTIALS_FILE={args.key}); pushes sent: {standin.api_base}/_standin/messages"
    )


if __name__ == "__main__":
    main()
