"""Firebase Cloud Messaging's HTTP v1 API: the one module that talks to FCM.

google-auth signs the service account's JWT and exchanges it for an OAuth access token at the
account's `token_uri` (refreshed before it expires, and once more on a 401); requests posts
`{FCM_API_BASE}/v1/projects/{FCM_PROJECT_ID}/messages:send`. Both addresses come from settings,
so development and the tests reach the loopback stand-in (devtools/fcm_standin.py) through this
very code. FCM's answers map to ours:

- 200: the message's name ("projects/p/messages/0:…");
- 404 `UNREGISTERED` (and 400 naming the token invalid): `Unregistered`, the token is dead;
- 429 `QUOTA_EXCEEDED`: `Throttled`, with its `Retry-After` (the caller pauses FCM for it);
- 500, 503, a timeout, a refused connection: raised as they are, to be retried;
- any other 4xx (a malformed message, a sender id mismatch), and a token exchange refused for
  good (a wrong or revoked key): `PushRejected`, never retried.
"""

import json
import threading
from dataclasses import dataclass

import requests
from django.conf import settings
from google.auth.exceptions import RefreshError, TransportError
from google.auth.transport.requests import AuthorizedSession
from google.auth.transport.requests import Request as AuthRequest
from google.oauth2 import service_account

from bimride.errors import PermanentError

SCOPES = ["https://www.googleapis.com/auth/firebase.messaging"]
DEFAULT_RETRY_AFTER = 60.0  # seconds, when a 429 names none (FCM's advice: at least a minute)


class PushRejected(PermanentError):
    """FCM refused the message for good (a malformed message, a sender id mismatch)."""

    code = "push_rejected"


class Unregistered(PermanentError):
    """FCM no longer knows the token (the app was uninstalled, or its token rotated)."""

    code = "push_token_unregistered"


class Throttled(Exception):  # noqa: N818 - FCM's word
    """FCM's quota for the project or the device is spent: come back after `seconds`."""

    def __init__(self, message: str, *, seconds: float):
        super().__init__(message)
        self.seconds = seconds


@dataclass(frozen=True)
class Message:
    """One push, as FCM's v1 `message` says it; `token` is read from the device just before
    sending and kept nowhere else."""

    token: str
    platform: str  # a Device.Platform value
    title: str
    body: str
    data: dict[str, str]
    collapse_key: str
    ttl_seconds: int
    expires_epoch: int  # the same end, as APNs wants it

    def as_fcm(self) -> dict:
        notification = {"title": self.title, "body": self.body}
        ttl = max(0, self.ttl_seconds)
        message = {
            "token": self.token,
            "notification": notification,
            "data": self.data,
            "android": {"ttl": f"{ttl}s", "collapse_key": self.collapse_key, "priority": "high"},
            "apns": {
                "headers": {
                    "apns-expiration": str(self.expires_epoch),
                    "apns-collapse-id": self.collapse_key,
                    "apns-priority": "10",
                }
            },
            "webpush": {"headers": {"TTL": str(ttl), "Topic": self.collapse_key[:32]}},
        }
        return {"message": message}


# --- the session --------------------------------------------------------------------------------
# The credentials (and so the access token) are shared by the process's threads; each thread
# has its own HTTP session, as a worker runs several attempts at once, one per thread.
_credentials: dict[str, service_account.Credentials] = {}
_lock = threading.Lock()
_local = threading.local()


def service_account_info() -> dict:
    """The service account's JSON key, from FCM_CREDENTIALS_FILE or FCM_CREDENTIALS_JSON."""
    if settings.FCM_CREDENTIALS_JSON:
        return json.loads(settings.FCM_CREDENTIALS_JSON)
    if settings.FCM_CREDENTIALS_FILE:
        with open(settings.FCM_CREDENTIALS_FILE, encoding="utf-8") as key_file:
            return json.load(key_file)
    raise PushRejected("Pushes are not configured: set FCM_CREDENTIALS_FILE.", code="fcm_unset")


def project_id(info: dict) -> str:
    return settings.FCM_PROJECT_ID or info["project_id"]


def _session(info: dict) -> AuthorizedSession:
    """This thread's authorised session for the service account `info`; its access token is
    the process's, reused until it nears its expiry."""
    key = json.dumps([info.get("client_email"), info.get("token_uri"), info.get("private_key_id")])
    with _lock:
        credentials = _credentials.get(key)
        if credentials is None:
            credentials = service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
            _credentials[key] = credentials
    sessions = getattr(_local, "sessions", None)
    if sessions is None:
        sessions = _local.sessions = {}
    session = sessions.get(key)
    if session is None:
        session = sessions[key] = AuthorizedSession(
            credentials,
            auth_request=AuthRequest(requests.Session()),
            refresh_timeout=settings.FCM_TIMEOUT[1],
        )
    return session


# --- sending ------------------------------------------------------------------------------------
def send(message: Message) -> str:
    """Send `message`; return FCM's name of it. Raises as the module's docstring says."""
    info = service_account_info()
    url = f"{settings.FCM_API_BASE.rstrip('/')}/v1/projects/{project_id(info)}/messages:send"
    try:
        response = _session(info).post(url, json=message.as_fcm(), timeout=settings.FCM_TIMEOUT)
    except RefreshError as error:
        if not error.retryable:  # a wrong key, a revoked account: no retry fixes it
            raise PushRejected(f"FCM's token exchange refused the service account: {error}")
        raise ConnectionError(f"FCM's token exchange failed: {error}") from error
    except TransportError as error:
        raise ConnectionError(f"FCM's token exchange failed: {error}") from error
    if response.status_code == 200:
        return str(response.json()["name"])
    raise _error_of(response)


def _error_of(response: requests.Response) -> Exception:
    status = response.status_code
    fcm_code, text = _fcm_error(response)
    described = f"FCM answered {status} {fcm_code or ''}: {text}".replace("  ", " ")
    if fcm_code == "UNREGISTERED" or status == 404:
        return Unregistered(described)
    if status == 400 and fcm_code == "INVALID_ARGUMENT" and "token" in text.lower():
        return Unregistered(described)
    if status == 429:
        return Throttled(described, seconds=_retry_after(response))
    if 400 <= status < 500 and status != 408:
        return PushRejected(described)
    return requests.HTTPError(described, response=response)  # 5xx, 408: retried


def _fcm_error(response: requests.Response) -> tuple[str, str]:
    """FCM's error code (`UNREGISTERED`, from the error's details) and message."""
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return "", response.text[:300]
    code = ""
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("errorCode"):
            code = detail["errorCode"]
    return code or str(error.get("status", "")), str(error.get("message", ""))[:300]


def _retry_after(response: requests.Response) -> float:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return DEFAULT_RETRY_AFTER
