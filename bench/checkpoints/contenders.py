"""The contenders, each a saver and the graph compiled with it:

- ``official``: langgraph-checkpoint-postgres's ``AsyncPostgresSaver`` on a psycopg pool opened
  as its documentation says (autocommit, ``prepare_threshold=0``, ``dict_row``), in a database
  of its own that ``saver.setup()`` created the tables in;
- ``mnemo``: Mnemo's ``AsyncpgSaver`` on an asyncpg pool built by ``dal.database.pool_options``,
  in a database migrated by ``dal.migrate.apply``;
- ``memory``: LangGraph's ``InMemorySaver``, a reference: what the graph itself costs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, cast

import asyncpg
import psycopg
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from bench.checkpoints.graph import Graph, Saver, build_graph
from dal.database import init_connection, pool_options
from dal.langgraph import AsyncpgSaver
from dal.settings import Settings

Contender = Literal["official", "mnemo", "memory"]
CONTENDERS: tuple[Contender, ...] = ("official", "mnemo", "memory")
DATABASES: tuple[Contender, ...] = ("official", "mnemo")  # the contenders with a database
LABELS: dict[Contender, str] = {
    "official": "AsyncPostgresSaver",
    "mnemo": "Mnemo AsyncpgSaver",
    "memory": "InMemorySaver",
}


@dataclass
class Side:
    """One contender: its saver and the graph compiled with it."""

    name: Contender
    saver: Saver
    graph: Graph


class CountingCursor(AsyncCursor[Any]):
    """A psycopg cursor counting the statements it sends (``executemany``: one per row)."""

    statements = 0

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        CountingCursor.statements += 1
        return await super().execute(query, params, **kwargs)

    async def executemany(self, query: Any, params_seq: Iterable[Any], **kwargs: Any) -> None:
        params = list(params_seq)
        CountingCursor.statements += len(params)
        await super().executemany(query, params, **kwargs)


@asynccontextmanager
async def open_sides(
    urls: Mapping[Contender, str], pool_size: int, *, count_statements: Counter[str] | None = None
) -> AsyncIterator[dict[Contender, Side]]:
    """The three contenders, on pools of ``pool_size`` connections (closed on exit). With
    ``count_statements``, each statement either pool sends is counted in it."""
    settings = Settings(
        database_url=urls["mnemo"], db_min_connections=pool_size, db_max_connections=pool_size
    )
    options = pool_options(settings)
    official_kwargs: dict[str, Any] = {
        "autocommit": True,
        "prepare_threshold": 0,
        "row_factory": dict_row,
    }
    if count_statements is not None:
        counter = count_statements

        async def init(conn: asyncpg.Connection[Any]) -> None:
            await init_connection(conn)
            conn.add_query_logger(lambda _: counter.update(["mnemo"]))

        options["init"] = init
        official_kwargs["cursor_factory"] = CountingCursor
    async with AsyncExitStack() as stack:
        mnemo_pool: asyncpg.Pool[Any] = await asyncpg.create_pool(urls["mnemo"], **options)
        stack.push_async_callback(mnemo_pool.close)
        psycopg_pool = AsyncConnectionPool(
            urls["official"],
            min_size=pool_size,
            max_size=pool_size,
            kwargs=official_kwargs,
            open=False,
        )
        await psycopg_pool.open(wait=True)
        stack.push_async_callback(psycopg_pool.close)
        savers: dict[Contender, Saver] = {
            "official": AsyncPostgresSaver(
                cast("AsyncConnectionPool[AsyncConnection[DictRow]]", psycopg_pool)
            ),
            "mnemo": AsyncpgSaver(mnemo_pool),
            "memory": InMemorySaver(),
        }
        yield {c: Side(c, savers[c], build_graph(savers[c])) for c in CONTENDERS}


def unix_socket_ok(url: str) -> None:
    """psycopg reads the embedded server's URL (``postgresql://user:@/db?host=/socket/dir``)
    as libpq does: fail early and clearly if it does not."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT 1")
