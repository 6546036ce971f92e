"""The environment every section of the settings reads, through one django-environ reader.

Each section reads its variables with this module's `env`, a typed reader and the variable's name
as a literal: `env.int("JOB_PRUNE_BATCH", 1000)`, `env.bool(...)`, `env.str(...)`, `env.list(...)`.
DJANGO_ENV=production turns on the secure settings and refuses to start without the variables
production needs; development defaults are safe and offline.
"""

from pathlib import Path
from urllib.parse import urlparse

import environ
from django.core.exceptions import ImproperlyConfigured


def _expected(cast) -> str:
    """What a value read with `cast` must look like, in words."""
    if cast is bool:
        return "true or false (or yes/no, on/off, 1/0)"
    if cast is int:
        return "a whole number"
    if cast is float:
        return "a number"
    if cast is urlparse:
        return "a URL"
    if isinstance(cast, dict):
        return "name=value pairs (a=1,b=2), each value " + _expected(cast.get("value", str))
    if isinstance(cast, list):
        return "a comma-separated list, each item " + _expected(cast[0])
    return "text" if cast in (None, str) else f"a {getattr(cast, '__name__', cast)}"


class Env(environ.Env):
    """django-environ's reader, refusing a value of the wrong type with ImproperlyConfigured that
    names the variable and what it expects: django-environ itself raises a bare ValueError, and
    reads any word but its true ones ("yes", "on", ...) as a false boolean."""

    BOOLEAN_FALSE_STRINGS = ("false", "off", "no", "n", "0", "")

    def get_value(self, var, cast=None, default=environ.Env.NOTSET, parse_default=False):
        try:
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        except (ValueError, TypeError, IndexError) as exc:
            shown = "" if cast is urlparse else f"={self.ENVIRON.get(var)!r}"  # a URL's password
            raise ImproperlyConfigured(f"{var}{shown} is not {_expected(cast)}.") from exc

    @classmethod
    def parse_value(cls, value, cast):
        if isinstance(cast, dict) and isinstance(value, str):
            # Typed pairs, "stripe=100,email=20": django-environ splits them at semicolons only,
            # and would read that as {"stripe": 100.0}, the rest silently dropped.
            value = value.replace(",", ";")
        if cast is bool and isinstance(value, str):
            word = value.strip().lower()
            if word not in cls.BOOLEAN_TRUE_STRINGS + cls.BOOLEAN_FALSE_STRINGS:
                int(word)  # any whole number is a boolean to django-environ (0: false)
        return super().parse_value(value, cast)


# The checkout: templates, collected static files and .data/ (metrics, emails) live in it.
BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = Env()

DJANGO_ENV = env.str("DJANGO_ENV", "development")
PRODUCTION = DJANGO_ENV == "production"

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
