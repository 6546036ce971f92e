"""The environment every section of the settings reads, through one django-environ reader.

Each section reads its variables here with a typed reader and the variable's name as a literal:
`env.int("JOB_PRUNE_BATCH", 1000)`, `env.bool(...)`, `env.str(...)`, `env.list(...)`.
DJANGO_ENV=production turns on the secure settings and refuses to start without the variables
production needs; development defaults are safe and offline.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

# The checkout: templates, collected static files and .data/ (metrics, emails) live in it.
BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()

DJANGO_ENV = env.str("DJANGO_ENV", "development")
PRODUCTION = DJANGO_ENV == "production"
TESTING = env.bool("BIMRIDE_TESTING", False)

if PRODUCTION:
    _needed = {
        "SECRET_KEY": env.str("SECRET_KEY", ""),
        "DATABASE_URL": env.str("DATABASE_URL", ""),
        "ALLOWED_HOSTS": env.str("ALLOWED_HOSTS", ""),
    }
    _missing = [name for name, value in _needed.items() if not value]
    if _missing:
        raise ImproperlyConfigured(
            "DJANGO_ENV=production needs these environment variables: " + ", ".join(_missing)
        )
