"""What the search benchmark times: searches and filters through Mnemo's gateways, each within
one user's data and asking for the first page of 20, and the same text searches written as a
plain ``content ILIKE '%term%'`` (what a data layer without a text index does).

A probe is one kind of query; its queries vary the user and the term (drawn from the terms the
generator counted in that user's messages, ``bench_search_terms``). The same (user, term)
sequence runs at every scale, so the growth from one scale to the next is the same query on
ten times the data.
"""

from __future__ import annotations

import importlib
import inspect
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from bench.search import corpus

PAGE = 20
# Probes whose page must hold at least min(PAGE, the messages holding the term): text
# searches and the ILIKE baseline (the generator counted exact words and CJK substrings).
EXACT = frozenset({"text", "order", "cjk", "broad"})
Run = Callable[[Any, UUID, str], Awaitable[int]]  # (pool, user_id, term) -> items returned

# The plain ILIKE a data layer without a text index runs: the user's conversations joined,
# newest first, first page.
ILIKE = """
SELECT m.conversation_id, m.seq, m.id, m.role, m.parts, m.content, m.metadata, m.created_at
  FROM messages AS m
  JOIN conversations AS c ON c.id = m.conversation_id
 WHERE c.user_id = $1
   AND m.content ILIKE '%' || $2 || '%'
 ORDER BY m.created_at DESC, m.id DESC
 LIMIT $3
"""


@dataclass(frozen=True)
class Probe:
    key: str
    title: str
    kind: str  # where its terms come from: a bench_search_terms kind, or "values"
    values: tuple[str, ...]  # the terms, when kind == "values"
    target_ms: float | None  # p95 at the largest scale
    growth_target: float | None  # largest / smallest scale p95
    baseline: bool  # timed beside the same search as content ILIKE
    needs: str  # what must exist for it to run: "search" or "tags"


PROBES = (
    Probe("text", "text, selective word", "word", (), 20.0, 2.0, True, "search"),
    Probe("order", "text, an order number", "order", (), 20.0, 2.0, True, "search"),
    Probe("cjk", "text, CJK two-character word", "cjk", (), 20.0, 2.0, True, "search"),
    Probe("broad", "text, common word", "broad", (), None, None, True, "search"),
    Probe(
        "tool",
        "tool filter",
        "values",
        corpus.TOOLS + corpus.DYNAMIC_TOOLS,
        10.0,
        None,
        False,
        "search",
    ),
    Probe(
        "tool_error",
        "tool state output-error",
        "values",
        ("output-error",),
        10.0,
        None,
        False,
        "search",
    ),
    Probe("metadata", "metadata @> {model}", "values", corpus.MODELS, 10.0, None, False, "search"),
    Probe(
        "metadata_rare",
        "metadata @> {feedback}",
        "values",
        ("negative",),
        10.0,
        None,
        False,
        "search",
    ),
    Probe(
        "part_type", "part type reasoning", "values", ("reasoning",), None, None, False, "search"
    ),
    Probe("text_tool", "text + tool filter", "broad", (), None, None, False, "search"),
    Probe("tags", "conversations by tag", "values", corpus.TAGS[:6], 10.0, None, False, "tags"),
    Probe("conversation_q", "conversations by text", "word", (), None, None, False, "tags"),
)


def available() -> dict[str, str | None]:
    """For each need, None when Mnemo has it, else why not."""
    why: dict[str, str | None] = {"search": None, "tags": None}
    try:
        importlib.import_module("dal.records.search")
        messages = importlib.import_module("dal.gateways.messages")
        if not hasattr(messages, "search_messages"):
            why["search"] = "dal.gateways.messages.search_messages not available yet"
    except ImportError:
        why["search"] = "dal.records.search not available yet"
    conversations = importlib.import_module("dal.gateways.conversations")
    parameters = inspect.signature(conversations.list_conversations).parameters
    if not {"q", "tags", "metadata"} <= set(parameters):
        why["tags"] = "list_conversations(q=, tags=, metadata=) not available yet"
    return why


def _search(**fixed: Any) -> Callable[[str], Run]:
    """A probe's query: search_messages with ``fixed`` filters and the term as ``term_field``."""

    def with_field(term_field: str) -> Run:
        async def run(pool: Any, user_id: UUID, term: str) -> int:
            # imported by name: the search gateway may not exist yet (see available())
            search_messages = importlib.import_module("dal.gateways.messages").search_messages
            MessageSearch = importlib.import_module("dal.records.search").MessageSearch  # noqa: N806

            filters = dict(fixed)
            if term_field == "metadata_model":
                filters["metadata"] = {"model": term}
            elif term_field == "metadata_feedback":
                filters["metadata"] = {"feedback": term}
            else:
                filters[term_field] = term
            page = await search_messages(
                pool, user_id=user_id, search=MessageSearch(**filters), limit=PAGE
            )
            return len(page.items)

        return run

    return with_field


async def _tags(pool: Any, user_id: UUID, term: str) -> int:
    from dal.gateways.conversations import list_conversations

    page = await list_conversations(pool, user_id=user_id, limit=PAGE, tags=[term])
    return len(page.items)


async def _conversation_q(pool: Any, user_id: UUID, term: str) -> int:
    from dal.gateways.conversations import list_conversations

    page = await list_conversations(pool, user_id=user_id, limit=PAGE, q=term)
    return len(page.items)


async def ilike(pool: Any, user_id: UUID, term: str) -> int:
    return len(await pool.fetch(ILIKE, user_id, term, PAGE))


RUNS: dict[str, Run] = {
    "text": _search()("q"),
    "order": _search()("q"),
    "cjk": _search()("q"),
    "broad": _search()("q"),
    "tool": _search()("tool"),
    "tool_error": _search()("tool_state"),
    "metadata": _search()("metadata_model"),
    "metadata_rare": _search()("metadata_feedback"),
    "part_type": _search()("part_type"),
    "text_tool": _search(tool="searchWeb")("q"),
    "tags": _tags,
    "conversation_q": _conversation_q,
}


@dataclass(frozen=True)
class Query:
    user: int  # the user's index (the same user at every scale)
    term: str


def queries(probe: Probe, terms: Sequence[tuple[int, str]], n: int, users: int) -> list[Query]:
    """``n`` queries of ``probe``, going round the users in a shuffled order: each user's term
    drawn from ``terms`` (user, term) of the probe's kind, or from its values."""
    rng = random.Random(f"queries-{probe.key}")
    order = list(range(users))
    rng.shuffle(order)
    by_user: dict[int, list[str]] = {}
    for user, term in terms:
        by_user.setdefault(user, []).append(term)
    chosen: list[Query] = []
    i = 0
    while len(chosen) < n and i < n * 10:
        user = order[i % users]
        i += 1
        pool = list(probe.values) if probe.kind == "values" else sorted(by_user.get(user, []))
        if pool:
            chosen.append(Query(user, rng.choice(pool)))
    return chosen


class Recorder:
    """An executor that runs everything on ``db`` and keeps the last statement and arguments
    (to EXPLAIN what a gateway ran)."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.last: tuple[str, tuple[Any, ...]] | None = None

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[Any]:
        self.last = (query, args)
        rows: list[Any] = await self.db.fetch(query, *args, timeout=timeout)
        return rows

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        self.last = (query, args)
        return await self.db.fetchrow(query, *args, timeout=timeout)

    async def fetchval(
        self, query: str, *args: Any, column: int = 0, timeout: float | None = None
    ) -> Any:
        self.last = (query, args)
        return await self.db.fetchval(query, *args, column=column, timeout=timeout)

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        self.last = (query, args)
        status: str = await self.db.execute(query, *args, timeout=timeout)
        return status


async def explain(pool: Any, run: Run, user_id: UUID, term: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the statement ``run`` sends for (user, term): its custom
    plan (what the first executions of a prepared statement get), then its generic plan (what
    PostgreSQL may switch to from the sixth execution on, as asyncpg keeps the statement)."""
    recorder = Recorder(pool)
    await run(recorder, user_id, term)
    if recorder.last is None:
        return "(no statement recorded)"
    sql, args = recorder.last
    async with pool.acquire() as conn:
        custom = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
        await conn.execute("PREPARE bench_explain AS " + sql)
        try:
            types = await conn.fetchval(
                "SELECT parameter_types::text[] FROM pg_prepared_statements"
                " WHERE name = 'bench_explain'"
            )
            # EXECUTE takes no parameters: the values as literals, printed by the server
            literals = [
                await conn.fetchval(f"SELECT quote_nullable($1::{kind}) || '::{kind}'", arg)
                for kind, arg in zip(types, args, strict=True)
            ]
            async with conn.transaction():
                await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                generic = await conn.fetch(
                    f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_explain({', '.join(literals)})"
                )
        finally:
            await conn.execute("DEALLOCATE bench_explain")
    return "\n".join(
        ["-- custom plan", *(row[0] for row in custom), "-- generic plan"]
        + [row[0] for row in generic]
    )
