"""Database helpers shared by workers."""

import logging
import time
from collections.abc import Callable

from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)


def patiently(step: Callable, *args, patience: float):
    """Run `step(*args)`, riding out a database outage of up to `patience` seconds by
    reconnecting: for bookkeeping whose loss would cost a duplicate or a lost outcome."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return step(*args)
        except (OperationalError, InterfaceError):
            if time.monotonic() > deadline:
                raise
            logger.warning("database unavailable; retrying %s", step.__name__)
            connection.close()
            time.sleep(1)
