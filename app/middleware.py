"""Checks every request goes through before routing: its path and query string must decode,
and the router answers a missing path with 404 (never a redirect)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.routing import Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import error_response


def _undecodable(raw: bytes) -> str | None:
    """Why a percent-encoded path or query string cannot be taken as text, or None if it can.

    Servers decode escapes that are not UTF-8 (``%FF``, ``%C0%AF``) to U+FFFD, so without this
    check different paths would name the same row. NUL cannot be stored by PostgreSQL.
    """
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return "is not valid UTF-8 once percent-decoded"
    if "\x00" in text:
        return "may not contain the NUL character (%00)"
    return None


class RequestTargetCheck:
    """Refuse with 400 a request whose path or query string does not decode to UTF-8 text
    without NUL: ``malformed_path`` / ``malformed_query``. Pure ASGI (no body buffering)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # raw_path is optional in ASGI: without it only what survived decoding is checked.
            raw_path = scope.get("raw_path") or str(scope["path"]).encode()
            for what, raw in (("path", raw_path), ("query", scope.get("query_string") or b"")):
                problem = _undecodable(raw)
                if problem is not None:
                    response = error_response(
                        400, f"malformed_{what}", f"the request's {what} {problem}"
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


class MnemoRouter(Router):
    """Starlette's router without slash redirects: ``/v1/me/`` or ``/v1/threads/%2F`` (a
    thread id cannot contain ``/``) is 404, not a 307 to another resource. (A wrong method is
    405 with every method of the path in ``Allow``: each path is one route, see
    ``app.endpoints.PathRoute``.)"""

    def __init__(self, routes: Sequence[Route], *, lifespan: Any) -> None:
        super().__init__(list(routes), redirect_slashes=False, lifespan=lifespan)
