"""BimRide's settings with plain django-q2: the stock ORM broker, for the benchmark's baseline.

BENCH_PLAIN_PROFILE picks the configuration: `defaults` (django-q2's and Django's defaults:
CONN_MAX_AGE 0, parameters bound by the client, save_limit 250, bulk 1, poll 0.2, recycle 500,
INFO logs) or `best` (the best measured in /work/shared/DJANGO-Q2-NOTES.md, with BimRide's
prepared statements: CONN_MAX_AGE 600, bulk 10, save_limit -1, recycle high, django-q2
logging at WARNING).
"""

import os
import warnings

from bimride.settings import *  # noqa: F403
from bimride.settings import DATABASES, LOGGING

PROFILE = os.environ.get("BENCH_PLAIN_PROFILE", "defaults")
if PROFILE not in ("defaults", "best"):
    raise ValueError(f"BENCH_PLAIN_PROFILE must be defaults or best, not {PROFILE!r}")

# django-q2's own default (no timeout) trips its warning about timeout vs retry; it is kept.
warnings.filterwarnings("ignore", "Retry and timeout are misconfigured", UserWarning)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = False  # Django's default
DATABASES["default"]["ATOMIC_REQUESTS"] = False  # Django's default
Q_CLUSTER = {"name": "default", "orm": "default", "workers": 2, "label": "Django Q2"}
# django-q2 logs through the "django-q" logger; its `log_level` option (default INFO) only
# applies when no handler exists, and the project's root handler does: set the level here.
if PROFILE == "defaults":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    for option in ("server_side_binding", "prepare_threshold"):  # Django binds on the client
        DATABASES["default"]["OPTIONS"].pop(option, None)
    LOGGING["loggers"]["django-q"] = {"level": "INFO", "propagate": True}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = 600
    Q_CLUSTER.update({"bulk": 10, "save_limit": -1, "recycle": 100_000})
    LOGGING["loggers"]["django-q"] = {"level": "WARNING", "propagate": True}
