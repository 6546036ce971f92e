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


class TransactionAroundProviderCall(RuntimeError):
    """A provider was about to be called inside a database transaction, which would hold the
    transaction (its locks and its connection) open for as long as the provider takes."""


def in_transaction() -> bool:
    """Whether a transaction of the product's own is open (a test case's wrapping one is not)."""
    return any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


def provider_call(what: str) -> None:
    """Call before calling a provider (Stripe, the email API): refuses inside a transaction,
    and gives a pooled connection back, so a thread waiting on the provider holds none."""
    if in_transaction():
        raise TransactionAroundProviderCall(f"{what} called inside a database transaction")
    if connection.settings_dict["OPTIONS"].get("pool") and not connection.in_atomic_block:
        connection.close()  # back to the pool: the next query takes one again
