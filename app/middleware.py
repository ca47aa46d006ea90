"""Checks every request goes through before routing: its path and query string must decode,
and the router answers a missing path with 404 (never a redirect) and a wrong method with 405
and the methods of every route of that path."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match, Route, Router
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
    """Starlette's router with two changes.

    - No slash redirects: ``/v1/me/`` or ``/v1/threads/%2F`` (a thread id cannot contain
      ``/``) is 404, not a 307 to another resource.
    - A 405's ``Allow`` lists the methods of every route of the path (Starlette names only
      those of the first route that matched the path, e.g. ``GET, HEAD`` for ``PUT /v1/me``
      though ``PATCH`` is allowed too).
    """

    def __init__(self, routes: Sequence[BaseRoute], *, lifespan: Any) -> None:
        super().__init__(routes, redirect_slashes=False, lifespan=lifespan)

    def allowed_methods(self, scope: Scope) -> list[str]:
        """Every method some route accepts on this request's path, sorted."""
        methods: set[str] = set()
        for route in self.routes:
            if isinstance(route, Route) and route.matches(scope)[0] is not Match.NONE:
                methods |= route.methods or set()
        return sorted(methods)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().app(scope, receive, send)
        except HTTPException as exc:
            # Starlette's Route raises this (inside an app) before anything is sent.
            if exc.status_code != 405 or scope["type"] != "http":
                raise
            allow = ", ".join(self.allowed_methods(scope))
            raise HTTPException(405, headers={"Allow": allow}) from None
