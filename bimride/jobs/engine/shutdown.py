"""How a process running jobs is told to stop, told apart from a job that raises to stop it.

A handler may raise SystemExit or KeyboardInterrupt itself (`exit()` in a task, a library's
`sys.exit`): that only fails its attempt, and the worker carries on. A stop signal sent to the
process sets `requested()` before the same exceptions are raised in the running attempt, so the
runner records the attempt's failure and then lets the exception stop the process.

- A django-q2 worker obeys SIGTERM at once (a cluster sends it on a second Ctrl-C or SIGTERM,
  q2compat); SIGINT it leaves to its cluster, which stops gracefully on the first.
- `runjob --sync` obeys SIGINT (Ctrl-C) and SIGTERM.
"""

import contextlib
import logging
import signal
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

_received: list[int] = []  # the stop signals this process received
_hooks: list[Callable[[str], None]] = []  # what else stops at once (attempts in threads)


def on_stop(hook: Callable[[str], None]) -> None:
    """Have `hook(reason)` called when a stop signal stops this process at once."""
    _hooks.append(hook)


def requested() -> bool:
    """Whether a stop signal asked this process to stop (not merely a job raising)."""
    return bool(_received)


def _stop(signum: int, frame) -> None:
    first = not _received
    _received.append(signum)
    if not first:
        return  # already stopping: let the runner record the attempt undisturbed
    logger.warning("received %s: stopping now", signal.Signals(signum).name)
    for hook in _hooks:  # attempts in threads: recorded as failed, the process ends now
        hook(f"Stopped by {signal.Signals(signum).name}")
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(f"Stopped by {signal.Signals(signum).name}")


def obey_stop_signals(signals=(signal.SIGTERM,)) -> None:
    """From now on, `signals` stop this process at once (its main thread), the running attempt
    recorded as failed."""
    if threading.current_thread() is threading.main_thread():
        for signum in signals:
            signal.signal(signum, _stop)


@contextlib.contextmanager
def obeying_stop_signals(signals=(signal.SIGINT, signal.SIGTERM)):
    """Within the block, `signals` stop this process as in a worker (the exception leaves the
    block); then they do as they did."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in signals}
    obey_stop_signals(signals)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _received.clear()
