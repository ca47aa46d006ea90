"""``python -m bench.http.serve CONTENDER --port N --database-url URL``: one contender, served
by uvicorn in this process until SIGINT/SIGTERM.

Every contender gets the same uvicorn settings: one worker, access log off, no websockets, and
the event loop and HTTP parser that Mnemo's own ``app.server.config`` resolves to (as ``make
run`` serves it). Mnemo is served through that config itself, so with its own protocol class
(uvicorn's protocol for that parser with Mnemo's read and send deadlines and connection cap
mixed in, app/server.py) and its keep-alive timeout; the others get uvicorn's plain protocol of
the same parser, and the same keep-alive timeout.

The process counts what it does, for the harness to read between runs at ``GET
/__bench__/counts`` (answered before the app, on every contender alike): the requests it
answered, and the statements it sent to PostgreSQL. Statements are counted in the driver: for
asyncpg every prepared execution (``Connection._do_execute``) and every argument-less
``execute`` (BEGIN, COMMIT...); for SQLAlchemy every cursor execution plus the BEGIN, COMMIT
and ROLLBACK it reports.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

COUNTS_PATH = "/__bench__/counts"  # bench/http/__init__.py has it too
CONTENDERS = ("mnemo", "fastapi", "ceiling")
COUNTS = {"requests": 0, "statements": 0}


def _count_asyncpg() -> None:
    from asyncpg.connection import Connection

    do_execute = Connection._do_execute
    execute = Connection.execute

    async def counted_do_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        COUNTS["statements"] += 1
        return await do_execute(self, *args, **kwargs)

    async def counted_execute(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if not args:  # the simple-query path; with arguments it goes through _do_execute
            COUNTS["statements"] += 1
        return await execute(self, query, *args, **kwargs)

    Connection._do_execute = counted_do_execute  # type: ignore[method-assign]
    Connection.execute = counted_execute  # type: ignore[method-assign]


def _count_sqlalchemy(engine: Any) -> None:
    from sqlalchemy import event

    def one(*_: Any, **__: Any) -> None:
        COUNTS["statements"] += 1

    def rollback(connection: Any) -> None:
        # A ROLLBACK reaches the server only when a transaction is open there.
        info = connection.connection.dbapi_connection.info
        if info.transaction_status != 0:  # psycopg's TransactionStatus.IDLE
            COUNTS["statements"] += 1

    event.listen(engine, "before_cursor_execute", one)
    event.listen(engine, "begin", one)
    event.listen(engine, "commit", one)
    event.listen(engine, "rollback", rollback)


def counted(app: Any) -> Any:
    """The app behind a counter of its requests, with the counts at COUNTS_PATH."""

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if scope["path"] == COUNTS_PATH:
                body = orjson.dumps(COUNTS)
                headers = [(b"content-type", b"application/json")]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            try:
                await app(scope, receive, send)
            finally:
                COUNTS["requests"] += 1  # once answered: its statements are all counted
            return
        await app(scope, receive, send)

    return asgi


def mnemo_config(database_url: str, pool_size: int, **options: Any) -> uvicorn.Config:
    from app.server import config
    from dal.settings import Settings

    settings = Settings(
        database_url=database_url, db_min_connections=pool_size, db_max_connections=pool_size
    )
    return config(settings, **options)


def stack(config: uvicorn.Config) -> tuple[str, str]:
    """The event loop and HTTP parser a config resolves to: ("uvloop"|"asyncio", "h11"|...)."""
    loop = config.loop
    if loop == "auto":
        try:
            import uvloop  # noqa: F401

            loop = "uvloop"
        except ImportError:
            loop = "asyncio"
    http = config.http
    if not isinstance(http, str):
        http = "h11" if issubclass(http, H11Protocol) else "httptools"
    elif http == "auto":
        try:
            import httptools  # noqa: F401

            http = "httptools"
        except ImportError:
            http = "h11"
    return loop, http


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http.serve")
    parser.add_argument("contender", choices=CONTENDERS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--pool-size", type=int, default=10)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    common: dict[str, Any] = {"host": args.host, "port": args.port, "log_level": "warning"}
    mnemo = mnemo_config(args.database_url, args.pool_size, **common)
    _count_asyncpg()
    if args.contender == "mnemo":
        config = mnemo
    else:
        loop, http = stack(mnemo)
        if args.contender == "fastapi":
            from bench.http import fastapi_app

            app = fastapi_app.create_app(args.database_url, args.pool_size)
            _count_sqlalchemy(fastapi_app.engine_of(app))
        else:
            from bench.http import ceiling_app

            app = ceiling_app.create_app(args.database_url, args.pool_size)
        config = uvicorn.Config(
            app,
            loop=loop,
            http=http,
            ws="none",
            timeout_keep_alive=mnemo.timeout_keep_alive,
            access_log=False,
            **common,
        )
    config.app = counted(config.app)
    # Mnemo and the ceiling run on app.server's Server, which tunes the garbage collector once
    # started (as `make run` serves Mnemo); FastAPI as its tutorial serves it, plain uvicorn.
    from app.server import Server

    server_class = uvicorn.Server if args.contender == "fastapi" else Server
    try:
        server_class(config).run()
    except KeyboardInterrupt:
        pass  # the harness stops the server with SIGINT


if __name__ == "__main__":
    main()
