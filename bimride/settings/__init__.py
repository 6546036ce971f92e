"""BimRide's settings, all from the environment (docs/configuration.md lists every variable).

Django's core is here; each section is a module of its own that reads its variables with
django-environ's typed readers (env.py) and imports what it needs of the others: security,
database, api, jobs, email, payments, logging. Development defaults are safe and offline.
`DJANGO_ENV=production` turns on the secure settings and refuses to start without the
variables production needs.
"""

from datetime import timedelta

from bimride.settings.api import *  # noqa: F403
from bimride.settings.database import *  # noqa: F403
from bimride.settings.email import *  # noqa: F403
from bimride.settings.env import BASE_DIR, DJANGO_ENV, PRODUCTION, env  # noqa: F401
from bimride.settings.jobs import *  # noqa: F403
from bimride.settings.logging import *  # noqa: F403
from bimride.settings.payments import *  # noqa: F403
from bimride.settings.security import *  # noqa: F403

DEBUG = env.bool("DEBUG", not PRODUCTION)

INSTALLED_APPS = [
    "bimride.access.apps.StaffAdminConfig",  # django.contrib.admin behind two factors
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "django_tasks",
    "anymail",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "bimride",
    "bimride.access",  # after axes: its receivers see axes' verdict on each attempt
    "bimride.jobs",
    "rides",
    "payments",
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "bimride.tracing.TraceMiddleware",
    "bimride.api.ApiErrorMiddleware",  # outside the rest: sees every answer under /api/
    "bimride.health.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "bimride.access.middleware.StaffSessionIdleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out sign-in into a 429
]

if PRODUCTION:  # gunicorn serves the admin's and API docs' assets (runserver does in dev)
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "bimride.urls"
WSGI_APPLICATION = "bimride.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Every table's id.
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}

# --- Rides and fares (integer minor units) ------------------------------------------------------
FARE_CURRENCY = env.str("FARE_CURRENCY", "usd")
FARE_BASE = env.int("FARE_BASE", 250)
FARE_PER_KM = env.int("FARE_PER_KM", 120)
FARE_PER_MIN = env.int("FARE_PER_MIN", 30)
RIDE_EXPIRY = timedelta(seconds=env.int("RIDE_EXPIRY_SECONDS", 300))
MATCH_DRIVERS = env.int("MATCH_DRIVERS", 5)
# A rider hears "your driver is arriving" once the driver's last ping is this close to the
# pickup: about two minutes out in town, so the every-minute sweep still tells them in time.
ARRIVING_DISTANCE_KM = env.float("ARRIVING_DISTANCE_KM", 1.0)

# `from bimride.settings import *` (a settings module of one's own on top) gives the settings.
__all__ = [name for name in dir() if name.isupper()]
