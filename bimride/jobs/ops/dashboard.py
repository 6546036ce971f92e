"""Panels the apps add to the queue overview (`/admin/jobs/job/dashboard/`), so the overview
shows what the jobs did without the job system importing the apps: an app registers a panel in
its `AppConfig.ready()`.

    panel("Pushes, last 24 hours", ["kind", "outcome", "pushes"], push_counts)
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Panel:
    title: str
    columns: tuple[str, ...]
    rows: Callable[[], list[tuple]]  # read when the overview is shown
    link: str = ""  # where the rows are listed in full (an admin changelist)


_panels: dict[str, Panel] = {}


def panel(title: str, columns: list[str], rows: Callable[[], list[tuple]], link: str = "") -> None:
    """Show a table titled `title` on the queue overview (registering a title again replaces
    it)."""
    _panels[title] = Panel(title, tuple(columns), rows, link)


def panels() -> list[dict]:
    """Every registered panel with its rows, read now; a panel that fails to read says so
    instead of breaking the overview."""
    shown = []
    for p in _panels.values():
        try:
            rows, error = p.rows(), ""
        except Exception as failure:
            logger.exception("dashboard panel %r failed", p.title)
            rows, error = [], f"could not be read: {type(failure).__name__}"
        shown.append(
            {"title": p.title, "columns": p.columns, "rows": rows, "link": p.link, "error": error}
        )
    return shown
