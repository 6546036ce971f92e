"""Logging: one line per record, text in development and JSON in production, each carrying the
request's trace and the job's context (bimride.tracing); alerts go by email to ADMINS."""

from bimride.settings.env import PRODUCTION, env

ADMINS = [("Ops", a) for a in env.list("ADMINS", default=[])]
LOG_LEVEL = env.str("LOG_LEVEL", "INFO")
LOG_FORMAT = env.str("LOG_FORMAT", "json" if PRODUCTION else "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "bimride.tracing.ContextFilter"}},
    "formatters": {
        "text": {
            "format": "%(asctime)s %(levelname)s %(name)s [trace=%(trace_id)s job=%(job_id)s "
            "%(job_name)s attempt=%(attempt)s queue=%(queue)s] %(message)s"
        },
        "json": {"()": "bimride.tracing.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        },
        "mail_admins": {
            "class": "django.utils.log.AdminEmailHandler",
            "level": "ERROR",
            "filters": ["context"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django-q": {"level": env.str("Q_LOG_LEVEL", "WARNING"), "propagate": True},
        "bimride.alerts": {"handlers": ["mail_admins"], "level": "ERROR", "propagate": True},
    },
}
