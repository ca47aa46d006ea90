"""The no-framework ceiling: bare Starlette handlers running Mnemo's own SQL (the named queries'
text) with raw asyncpg, answering with orjson. No validation beyond what the SQL needs, no
records, no middleware: what the HTTP path of these routes costs with next to nothing on top
of the server, the driver and the database. One round trip per request, like Mnemo's: a token
is looked up (``get_user_by_token``) the first time it is seen and kept in a plain dict, which
is the floor of any cache (Mnemo's also expires entries and drops them on NOTIFY), then the
work.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from dal.gateways.messages import (
    MAX_MESSAGE_BYTES,
    MAX_MESSAGE_PARTS,
    MAX_PAGE_BYTES,
    SESSION_TIMEOUT_SECONDS,
)
from dal.ids import new_id
from dal.queries import Q

AUTH_SQL = Q["get_user_by_token"].sql
PAGE_SQL = Q["list_messages_latest"].sql
INSERT_SQL = Q["insert_message"].sql
_UNAUTHORIZED = Response(b'{"error":"unauthorized"}', 401, media_type="application/json")
_NOT_FOUND = Response(b'{"error":"not_found"}', 404, media_type="application/json")


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=str)  # asyncpg's UUID subclass is not orjson's UUID


def _json(value: Any, status: int = 200) -> Response:
    return Response(_dumps(value), status, media_type="application/json")


async def _init(conn: asyncpg.Connection[Any]) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(
            kind,
            schema="pg_catalog",
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
        )


async def _keep(conn: asyncpg.Connection[Any]) -> None:
    """No reset query when a connection goes back to the pool (asyncpg's default sends one,
    a round trip per request); these handlers leave no session state behind. Mnemo's pool skips
    it too."""


_USERS: dict[bytes, dict[str, Any]] = {}


async def _user(request: Request) -> dict[str, Any] | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    token_hash = hashlib.sha256(token.strip().encode()).digest()
    user = _USERS.get(token_hash)
    if user is None:
        row = await request.app.state.pool.fetchrow(AUTH_SQL, token_hash)
        if row is None:
            return None
        user = dict(row)
        del user["expires_in"]
        _USERS[token_hash] = user
    return user


async def me(request: Request) -> Response:
    user = await _user(request)
    if user is None:
        return _UNAUTHORIZED
    return _json(user)


async def messages(request: Request) -> Response:
    user = await _user(request)
    if user is None:
        return _UNAUTHORIZED
    pool = request.app.state.pool
    conversation_id = request.path_params["conversation_id"]
    if request.method == "POST":
        try:
            body = orjson.loads(await request.body())
        except ClientDisconnect:  # wrk stopping mid-request
            return Response(status_code=400)
        row = await pool.fetchrow(
            INSERT_SQL,
            user["id"],
            conversation_id,
            new_id(),
            body["role"],
            body["parts"],
            body.get("metadata", {}),
            body.get("status", "complete"),
            MAX_MESSAGE_BYTES,
            MAX_MESSAGE_PARTS,
            None,  # reply_to
            SESSION_TIMEOUT_SECONDS,
            0,  # no message limit per conversation
            0,  # nor per user
            [],  # no file references
        )
        if row is None:
            return _NOT_FOUND
        message = dict(row)
        for extra in ("created", "problem", "tool_call_id", "attachment_id"):
            del message[extra]
        return _json(message, 201)
    limit = int(request.query_params.get("limit", "50"))
    rows = await pool.fetch(PAGE_SQL, user["id"], conversation_id, limit + 1, MAX_PAGE_BYTES)
    if not rows:
        return _NOT_FOUND
    if rows[0]["seq"] is None:
        return _json({"items": [], "has_more": False})
    items = [dict(row) for row in rows if row["parts"] is not None]
    return _json({"items": items, "has_more": len(items) < len(rows)})


def create_app(database_url: str, pool_size: int = 10) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(
            database_url, min_size=pool_size, max_size=pool_size, init=_init, reset=_keep
        )
        try:
            yield
        finally:
            await app.state.pool.close()

    return Starlette(
        routes=[
            Route("/v1/me", me, methods=["GET"]),
            Route(
                "/v1/conversations/{conversation_id:uuid}/messages",
                messages,
                methods=["GET", "POST"],
            ),
        ],
        lifespan=lifespan,
    )
