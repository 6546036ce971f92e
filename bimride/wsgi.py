"""WSGI entry point (gunicorn bimride.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bimride.settings")
application = get_wsgi_application()
