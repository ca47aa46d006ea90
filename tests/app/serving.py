"""The app behind a real uvicorn, as ``app.server.serve`` runs it, in a thread of the test.

A socket bound by the test (port 0) avoids races on ports; uvicorn's own logging set-up is
skipped (``log_config=None``) so that pytest's ``caplog`` sees every record.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from app import server
from dal.settings import Settings


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """Serve the app with ``settings`` (its limits included) until the block ends; yields
    ``http://127.0.0.1:<port>``."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uv = uvicorn.Server(server.config(settings, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not uv.started:
            assert thread.is_alive(), "the app did not start"
            assert time.monotonic() < deadline, "the app took over 60 s to start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(60)
        sock.close()
