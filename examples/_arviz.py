"""ArviZ, imported without its once-a-day notice (shared by the Pyro and NumPyro examples).

ArviZ 0.23 raises a ``FutureWarning`` ("ArviZ is undergoing a major refactor ...") on its first
import of each day, and records the day in ``$XDG_CACHE_HOME/arviz/daily_warning``. Under
``-W error`` (as the tests run the examples) that notice kills the first run on every new
machine and every new day, and only then. It is ignored here by message, category and module,
around the import alone: every other warning, ArviZ's included, still shows (or fails).
"""

from __future__ import annotations

import warnings

__all__ = ["import_arviz"]

#: The notice's text starts with a newline; ``filterwarnings`` matches from the start.
DAILY_NOTICE = r"\s*ArviZ is undergoing a major refactor"


def import_arviz():
    """``import arviz`` with its daily ``FutureWarning`` ignored; returns the module."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=DAILY_NOTICE, category=FutureWarning, module="arviz")
        import arviz

    return arviz
