"""Security: the secret key, the hosts served, sign-in (axes' lockout, staff's second factor),
sessions and API tokens, and HTTPS in production."""

from datetime import timedelta

from bimride.settings.env import PRODUCTION, env

SECRET_KEY = env.str("SECRET_KEY", "dev-only-insecure-key-0123456789-abcdefghijklmnopqrstuvwxyz")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- Sign-in security -----------------------------------------------------------------------------
# Every way in (admin, browsable API, POST /api/auth/token) authenticates through axes first: a
# locked-out account or address is refused before its password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Failed sign-ins lock in layers (bimride.access.lockout says how, docs/operations.md why these
# figures):
# the account from one address after LOGIN_FAILURE_LIMIT failures (django-axes' own lock); the
# address, at any accounts, after LOGIN_ADDRESS_FAILURE_LIMIT (sized for carrier NAT: thousands
# of riders behind one address); the account, from any addresses, after
# LOGIN_ACCOUNT_FAILURE_LIMIT, refused only where its owner has not signed in before (staff:
# after LOGIN_FAILURE_LIMIT, everywhere). The counts live in the database (shared by every web
# process) and lapse LOGIN_COOLOFF_MINUTES after the last failure; a success forgets the
# account's failures from that address; attempts refused while locked do not extend the lock.
AXES_HANDLER = "bimride.access.lockout.LayeredLockoutHandler"
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
LOGIN_ADDRESS_FAILURE_LIMIT = env.int("LOGIN_ADDRESS_FAILURE_LIMIT", 100)
LOGIN_ACCOUNT_FAILURE_LIMIT = env.int("LOGIN_ACCOUNT_FAILURE_LIMIT", 20)
LOGIN_KNOWN_ADDRESS_DAYS = env.int("LOGIN_KNOWN_ADDRESS_DAYS", 90)
# Not axes' reset, which forgets every failure of the account or the address: a success on
# one's own account would wipe the guesses at another from the same address (bimride.access).
AXES_RESET_ON_SUCCESS = False
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_USERNAME_CALLABLE = "bimride.access.lockout.attempted_username"
AXES_CLIENT_IP_CALLABLE = "bimride.access.lockout.client_ip"
AXES_LOCKOUT_CALLABLE = "bimride.access.lockout.lockout_response"
AXES_DISABLE_ACCESS_LOG = True  # bimride.access keeps the audit of sign-ins (SignInEvent)
AXES_VERBOSE = False
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "otp_token"]  # masked in its records
# The client's address is REMOTE_ADDR unless the app sits behind this many proxies that each
# append to X-Forwarded-For; then it is the address the outermost trusted proxy saw.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", 0)
# Staff sign in with a TOTP code (or a recovery code): required in production; in development
# a staff user without a device signs in with the password alone and is asked to enrol.
STAFF_OTP_REQUIRED = env.bool("STAFF_OTP_REQUIRED", PRODUCTION)
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", "BimRide")
# A staff session ends after this long without a request; other sessions last SESSION_COOKIE_AGE.
STAFF_SESSION_IDLE = timedelta(minutes=env.int("STAFF_SESSION_IDLE_MINUTES", 30))
SESSION_COOKIE_HTTPONLY = True
# Each web process keeps an API token it checked, with the token's user and profile, this many
# seconds (0: not at all): deleting the token or saving its user takes effect at once in the
# process that did it, and within these seconds in the others.
AUTH_TOKEN_CACHE_SECONDS = env.int("AUTH_TOKEN_CACHE_SECONDS", 10)
AUTH_TOKEN_CACHE_SIZE = 10_000  # tokens per process; past it, the expired ones are dropped
LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "/api/docs/"  # after the browsable API's sign-in without a `next`

# --- Production hardening -----------------------------------------------------------------------
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
