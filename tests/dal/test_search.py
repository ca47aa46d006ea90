"""Search: messages by text (English and CJK) and filters, conversations by text, tags and
metadata; ranking, keyset pages, isolation, safe snippets; and the plans that serve them."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import psycopg
import pytest
from pydantic import ValidationError

from dal.errors import InvalidInput
from dal.gateways import conversations, messages
from dal.queries import Q, Query
from dal.records.conversations import Conversation, ConversationDraft
from dal.records.messages import MessageDraft
from dal.records.search import MessageSearch, SearchHit, parse_query, snippet
from dal.records.users import User
from dal.settings import Settings
from tests.dal.conftest import make_conversation, make_user
from tests.dal.test_plans import walk

if TYPE_CHECKING:
    from tests.test_session_state import SessionRun


def text(body: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": body}]


def tool(name: str, state: str = "output-available") -> dict[str, Any]:
    return {"type": f"tool-{name}", "toolCallId": f"call-{name}", "state": state, "input": {}}


async def say(
    db: Any,
    user: User,
    chat: Conversation,
    parts: list[dict[str, Any]],
    role: str = "user",
    metadata: dict[str, Any] | None = None,
) -> Any:
    draft = MessageDraft(role=role, parts=parts, metadata=metadata or {})  # type: ignore[arg-type]
    made = await messages.insert_message(db, user_id=user.id, conversation_id=chat.id, draft=draft)
    return made.message


async def found(db: Any, user: User, limit: int = 50, **search: Any) -> list[SearchHit]:
    page = await messages.search_messages(
        db, user_id=user.id, search=MessageSearch(**search), limit=limit
    )
    return page.items


async def contents(db: Any, user: User, **search: Any) -> list[str]:
    return [hit.message.content for hit in await found(db, user, **search)]


# --- text --------------------------------------------------------------------------------------


async def test_search_messages_english_stems_phrases_exclusion_and_or(
    pool: Any, alice: User
) -> None:
    chat = await make_conversation(pool, alice, "Travel")
    for body in [
        "We were running late for the Kyoto trip",
        "A trip to Kyoto in spring",
        "The cat runs after the mouse",
        "Nothing to see here",
    ]:
        await say(pool, alice, chat, text(body))

    assert set(await contents(pool, alice, q="run")) == {
        "We were running late for the Kyoto trip",
        "The cat runs after the mouse",
    }
    assert await contents(pool, alice, q='"kyoto trip"') == [
        "We were running late for the Kyoto trip"
    ]
    assert await contents(pool, alice, q="kyoto -running") == ["A trip to Kyoto in spring"]
    assert set(await contents(pool, alice, q="mouse OR spring")) == {
        "The cat runs after the mouse",
        "A trip to Kyoto in spring",
    }
    assert await contents(pool, alice, q="kyoto spring OR mouse") == ["A trip to Kyoto in spring"]
    assert await contents(pool, alice, q="the") == []  # stop words only: nothing to look for


async def test_search_messages_ranks_better_matches_first_then_newest(
    pool: Any, alice: User
) -> None:
    chat = await make_conversation(pool, alice)
    older = await say(pool, alice, chat, text("invoice 1042 is late"))
    best = await say(pool, alice, chat, text("invoice invoice invoice: three reminders"))
    newer = await say(pool, alice, chat, text("invoice 1043 is late"))

    hits = await found(pool, alice, q="invoice")
    assert [h.message.id for h in hits] == [best.id, newer.id, older.id]
    assert hits[0].rank > hits[1].rank == hits[2].rank > 0
    assert all(h.conversation_title == "chat" and h.conversation_id == chat.id for h in hits)


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("京都", {"我们去京都会议", "Kyoto 京都 trip", "東京都と京都に行きます", "我在东京都"}),
        ("东京", {"我在东京都"}),
        ("会议", {"我们去京都会议"}),
        ("京都会议", {"我们去京都会议"}),
        ("都会", {"我们去京都会议"}),
        ("東京", {"東京都と京都に行きます"}),
        ("行きます", {"東京都と京都に行きます"}),
        ("kyoto 京都", {"Kyoto 京都 trip"}),
        ('"Kyoto 京都"', {"Kyoto 京都 trip"}),
        ("trip", {"Kyoto 京都 trip"}),
        ("京", {"我们去京都会议", "Kyoto 京都 trip", "東京都と京都に行きます", "我在东京都"}),
        ("议", {"我们去京都会议"}),
        ("京都 -会议", {"Kyoto 京都 trip", "東京都と京都に行きます", "我在东京都"}),
        ("大阪", set()),
        ("都京", set()),
        ("한국어", {"한국어 수업"}),
    ],
)
async def test_search_messages_finds_cjk_words_inside_runs_and_in_mixed_text(
    pool: Any, alice: User, q: str, expected: set[str]
) -> None:
    chat = await make_conversation(pool, alice)
    for body in [
        "我们去京都会议",
        "我在东京都",
        "Kyoto 京都 trip",
        "東京都と京都に行きます",
        "한국어 수업",
    ]:
        await say(pool, alice, chat, text(body))
    assert set(await contents(pool, alice, q=q)) == expected


async def test_search_vector_does_not_depend_on_the_locale(pool: Any) -> None:
    # The CJK lexemes come from explicit code point ranges: the same under a C collation.
    async with pool.acquire() as conn:
        bigrams = await conn.fetchval(
            "SELECT tsvector_to_array(mnemo_text_vector('东京都' COLLATE \"C\"))"
        )
    assert sorted(bigrams) == sorted(["东京", "京都", "都"])


# --- filters -------------------------------------------------------------------------------------


async def test_search_messages_by_tool_state_part_type_role_metadata_and_dates(
    pool: Any, alice: User
) -> None:
    chat = await make_conversation(pool, alice)
    weather_ok = await say(pool, alice, chat, [tool("getWeather")], "assistant")
    weather_err = await say(
        pool, alice, chat, [tool("getWeather", "output-error"), tool("search")], "assistant"
    )
    dynamic = await say(
        pool,
        alice,
        chat,
        [{"type": "dynamic-tool", "toolName": "mcp.search", "toolCallId": "c", "state": "x"}],
        "assistant",
    )
    filed = await say(
        pool,
        alice,
        chat,
        [{"type": "file", "mediaType": "image/png", "url": "https://x/a.png"}, *text("a file")],
        metadata={"source": "upload", "n": 1},
    )
    reasoned = await say(
        pool,
        alice,
        chat,
        [{"type": "reasoning", "text": "hmm"}, {"type": "source-url", "sourceId": "s", "url": "u"}],
        "assistant",
        metadata={"source": "web"},
    )

    async def ids(**search: Any) -> set[Any]:
        return {h.message.id for h in await found(pool, alice, **search)}

    assert await ids(tool="getWeather") == {weather_ok.id, weather_err.id}
    assert await ids(tool="mcp.search") == {dynamic.id}
    assert await ids(tool_state="output-error") == {weather_err.id}
    # tool and state together: that tool's part in that state (not another part's state).
    assert await ids(tool="search", tool_state="output-error") == set()
    assert await ids(tool="getWeather", tool_state="output-error") == {weather_err.id}
    assert await ids(part_type="file") == {filed.id}
    assert await ids(part_type="reasoning") == {reasoned.id}
    assert await ids(part_type="source") == await ids(part_type="source-url") == {reasoned.id}
    assert await ids(part_type="tool") == {weather_ok.id, weather_err.id, dynamic.id}
    assert await ids(role="user") == {filed.id}
    assert await ids(metadata={"source": "upload"}) == {filed.id}
    assert await ids(metadata={"source": "web"}, role="assistant") == {reasoned.id}
    assert await ids(metadata={"source": "upload"}, q="file") == {filed.id}
    assert await ids(metadata={"source": "nope"}) == set()
    assert await ids(q="file", part_type="reasoning") == set()
    assert await ids(q="hmm -file", role="assistant") == set()  # reasoning is not content
    # Exclusions alone need a facet to exclude from.
    assert await ids(q="-file", role="user") == set()
    assert await ids(q="-nothing", part_type="file") == {filed.id}

    async with pool.acquire() as conn:
        created = {
            r["id"]: r["created_at"]
            for r in await conn.fetch("SELECT id, created_at FROM messages")
        }
    cut = created[dynamic.id]
    assert await ids(since=cut) == {dynamic.id, filed.id, reasoned.id}
    assert await ids(until=cut) == {weather_ok.id, weather_err.id}
    assert await ids(since=cut, until=created[filed.id], part_type="tool") == {dynamic.id}
    assert await ids(since=cut, metadata={"n": 1}) == {filed.id}
    assert await ids(conversation_id=chat.id, until=cut) == {weather_ok.id, weather_err.id}
    other = await make_conversation(pool, alice, "other")
    assert await ids(conversation_id=other.id) == set()
    assert await ids(conversation_id=other.id, tool="getWeather") == set()


async def test_search_messages_without_text_finds_rare_and_common_matches_past_the_probe(
    pool: Any, alice: User
) -> None:
    """Facet and metadata searches read the user's 400 newest messages first: a common match
    fills its page there, a rare one (older than those 400) is found by the GIN index; pages
    through both stay in order, without gaps."""
    chat = await make_conversation(pool, alice)
    async with pool.acquire() as conn:
        await conn.execute(
            """
            INSERT INTO messages (conversation_id, seq, id, role, parts, content, metadata,
                                  parts_bytes, parts_count, metadata_bytes, created_at)
            SELECT $1, s, gen_random_uuid(), 'user',
                   CASE WHEN s IN (3, 5) THEN '[{"type": "file", "mediaType": "a/b", "url": "u"}]'
                        ELSE '[]' END::jsonb,
                   '', CASE WHEN s IN (3, 5) THEN '{"rare": true}' ELSE '{}' END::jsonb,
                   0, 0, 2, now() - make_interval(secs => 1000 - s)
              FROM generate_series(1, 450) AS s
            """,
            chat.id,
        )
        since = await conn.fetchval(
            "SELECT created_at FROM messages WHERE conversation_id = $1 AND seq = 440", chat.id
        )
    for search, expected in (
        ({"part_type": "file"}, [5, 3]),
        ({"metadata": {"rare": True}}, [5, 3]),
        ({"role": "user"}, list(range(450, 0, -1))),
        ({"metadata": {}}, list(range(450, 0, -1))),
        ({"role": "user", "since": since}, list(range(450, 439, -1))),
    ):
        seen: list[int] = []
        cursor = None
        while True:
            page = await messages.search_messages(
                pool, user_id=alice.id, search=MessageSearch(**search), limit=37, cursor=cursor
            )
            seen += [h.message.seq for h in page.items]
            if (cursor := page.next_cursor) is None:
                break
        assert seen == expected, search


async def test_search_messages_with_no_filter_lists_the_newest(pool: Any, alice: User) -> None:
    chat = await make_conversation(pool, alice)
    made = [await say(pool, alice, chat, text(f"m{i}")) for i in range(3)]
    hits = await found(pool, alice)
    assert [h.message.id for h in hits] == [m.id for m in reversed(made)]
    assert {h.rank for h in hits} == {0.0}
    assert hits[0].snippet == "m2"


async def test_search_messages_never_finds_another_users_messages(
    pool: Any, alice: User, bob: User
) -> None:
    mine = await make_conversation(pool, alice)
    theirs = await make_conversation(pool, bob)
    await say(pool, alice, mine, [tool("pay"), *text("secret 京都 invoice")], metadata={"k": 1})
    await say(pool, bob, theirs, [tool("pay"), *text("secret 京都 invoice")], metadata={"k": 1})
    for search in (
        {"q": "secret"},
        {"q": "京都"},
        {"tool": "pay"},
        {"metadata": {"k": 1}},
        {},
        {"conversation_id": theirs.id},
        {"q": "secret", "conversation_id": theirs.id},
    ):
        hits = await found(pool, alice, **search)
        assert all(h.conversation_id == mine.id for h in hits), search
        assert len(hits) == (0 if "conversation_id" in search else 1), search
    page = await conversations.list_conversations(pool, user_id=alice.id, q="secret", limit=50)
    assert [c.id for c in page.items] == [mine.id]


async def test_search_messages_user_id_follows_the_conversation(
    pool: Any, alice: User, bob: User
) -> None:
    """An insert that leaves messages.user_id out (an import's COPY, ad-hoc SQL) gets the
    conversation's owner; a conversation given to another user takes its messages along."""
    chat = await make_conversation(pool, alice)
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO messages (conversation_id, seq, id, role, parts, content, parts_bytes,"
            " parts_count, metadata_bytes) VALUES ($1, 1, gen_random_uuid(), 'user', $2,"
            " 'copied in', 10, 1, 2)",
            chat.id,
            text("copied in"),
        )
        assert [h.message.content for h in await found(conn, alice, q="copied")] == ["copied in"]
        await conn.execute("UPDATE conversations SET user_id = $1 WHERE id = $2", bob.id, chat.id)
    assert await found(pool, alice, q="copied") == []
    assert len(await found(pool, bob, q="copied")) == 1


# --- pages and snippets ----------------------------------------------------------------------


async def test_search_messages_pages_by_keyset_through_ties(pool: Any, alice: User) -> None:
    chat = await make_conversation(pool, alice)
    for i in range(7):
        await say(pool, alice, chat, text(f"order {i}" + " order" * (i % 3)))
    for search in ({"q": "order"}, {}, {"role": "user"}, {"metadata": {}}):
        everything = [h.message.id for h in await found(pool, alice, **search)]
        assert len(everything) == 7
        seen: list[Any] = []
        cursor = None
        while True:
            page = await messages.search_messages(
                pool, user_id=alice.id, search=MessageSearch(**search), limit=2, cursor=cursor
            )
            seen += [h.message.id for h in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == everything, search


async def test_search_messages_page_ends_before_max_bytes(pool: Any, alice: User) -> None:
    chat = await make_conversation(pool, alice)
    for _ in range(3):
        await say(pool, alice, chat, text("big " + "x" * 5000))
    page = await messages.search_messages(
        pool, user_id=alice.id, search=MessageSearch(q="big"), limit=10, max_bytes=8000
    )
    assert len(page.items) == 1 and page.next_cursor is not None


async def test_search_messages_refuses_a_bad_cursor_and_bad_searches(
    pool: Any, alice: User
) -> None:
    for cursor in ("nope", "W10", "WzEsMiwzLDRd"):
        with pytest.raises(InvalidInput, match="cursor"):
            await messages.search_messages(
                pool, user_id=alice.id, search=MessageSearch(), limit=5, cursor=cursor
            )
    with pytest.raises(InvalidInput, match="limit"):
        await messages.search_messages(pool, user_id=alice.id, search=MessageSearch(), limit=0)
    for bad in (
        {"q": "-only -exclusions"},
        {"q": "x" * 501},
        {"q": '" "'},
        {"q": "a\x00"},
        {"tool": ""},
        {"since": datetime(2026, 1, 2, tzinfo=UTC), "until": datetime(2026, 1, 1, tzinfo=UTC)},
        {"since": datetime(2026, 1, 2)},  # naive
        {"metadata": {"a": 2**70}},
    ):
        with pytest.raises(ValidationError):
            MessageSearch(**bad)


def test_parse_query_reads_web_search_syntax() -> None:
    parsed = parse_query('kyoto "day trip" OR tour -rain OR')
    assert parsed.terms == ("kyoto", "day trip", "tour", "rain")
    assert parsed.negated == (False, False, False, True)
    assert parsed.clauses == (0, 1, 1, 2)
    assert parse_query("a - b").terms == ("a", "-", "b")[::2]


async def test_search_snippet_is_escaped_and_marks_only_hits(pool: Any, alice: User) -> None:
    chat = await make_conversation(pool, alice)
    body = 'Hi <script>alert("x")</script> & <b>bold</b> invoices <mark>fake</mark> 京都'
    await say(pool, alice, chat, text(body))
    [hit] = await found(pool, alice, q="invoice 京都")
    assert "<script>" not in hit.snippet and "&lt;script&gt;" in hit.snippet
    assert "&lt;mark&gt;fake&lt;/mark&gt;" in hit.snippet
    assert re.findall(r"<[^>]*>", hit.snippet) == ["<mark>", "</mark>"] * 2
    assert "<mark>invoices</mark>" in hit.snippet and "<mark>京都</mark>" in hit.snippet


def test_snippet_windows_a_long_text_around_its_first_hit() -> None:
    body = "lorem " * 500 + "the needle is here " + "ipsum " * 500
    out = snippet(body, parse_query("needle"), frozenset({"needl"}))
    assert out.startswith("…") and out.endswith("…") and len(out) < 260
    assert "<mark>needle</mark>" in out


# --- conversations ---------------------------------------------------------------------------


async def test_list_conversations_filters_by_text_tags_and_metadata(
    pool: Any, alice: User, bob: User
) -> None:
    async def made(title: str, tags: list[str], metadata: dict[str, Any]) -> Conversation:
        draft = ConversationDraft(title=title, tags=tags, metadata=metadata)
        return await conversations.insert_conversation(pool, user_id=alice.id, draft=draft)

    billing = await made("Billing question", ["billing", "urgent"], {"plan": "pro"})
    refund = await made("Refund", ["billing"], {"plan": "free"})
    trip = await made("京都旅行", ["travel"], {"plan": "pro"})
    await say(pool, alice, refund, text("my invoice was wrong"))
    await conversations.insert_conversation(
        pool, user_id=bob.id, draft=ConversationDraft(title="Billing", tags=["billing"])
    )

    async def ids(**filters: Any) -> list[Any]:
        page = await conversations.list_conversations(pool, user_id=alice.id, limit=50, **filters)
        return [c.id for c in page.items]

    assert await ids(q="billing") == [billing.id]
    assert await ids(q="invoice") == [refund.id]
    assert await ids(q="billing OR invoice") == [refund.id, billing.id]
    assert await ids(q="京都") == [trip.id]
    assert await ids(tags=["billing"]) == [refund.id, billing.id]
    assert await ids(tags=["urgent", "travel"]) == [trip.id, billing.id]
    assert await ids(tags=["billing", "urgent"], tags_mode="all") == [billing.id]
    assert await ids(metadata={"plan": "pro"}) == [trip.id, billing.id]
    assert await ids(tags=["billing"], metadata={"plan": "pro"}) == [billing.id]
    assert await ids(q="billing OR invoice", tags=["urgent"]) == [billing.id]
    assert await ids(q="billing OR invoice", metadata={"plan": "free"}) == [refund.id]
    assert await ids(q="billing OR invoice", tags=["billing", "urgent"], tags_mode="all") == [
        billing.id
    ]
    assert await ids(tags=[]) == await ids() == [refund.id, trip.id, billing.id]

    for filters in ({"tags": ["billing"]}, {"q": "billing OR invoice"}, {"metadata": {}}):
        everything = await ids(**filters)
        seen: list[Any] = []
        cursor = None
        while True:
            page = await conversations.list_conversations(
                pool, user_id=alice.id, limit=1, cursor=cursor, **filters
            )
            seen += [c.id for c in page.items]
            if (cursor := page.next_cursor) is None:
                break
        assert seen == everything, filters

    for bad in (
        {"q": "-x"},
        {"q": ""},
        {"tags": ["x" * 101]},
        {"tags_mode": "some"},
        {"metadata": [1]},
    ):
        with pytest.raises(InvalidInput):
            await conversations.list_conversations(pool, user_id=alice.id, **bad)


# --- the append path -----------------------------------------------------------------------------


async def test_search_vector_holds_text_and_facets_of_an_append(pool: Any, alice: User) -> None:
    chat = await make_conversation(pool, alice)
    message = await say(
        pool, alice, chat, [tool("getWeather", "output-error"), *text("Kyoto rain 京都")], "tool"
    )
    async with pool.acquire() as conn:
        lexemes = await conn.fetchval(
            "SELECT tsvector_to_array(search_vector) FROM messages WHERE id = $1", message.id
        )
    assert set(lexemes) >= {
        "kyoto",
        "rain",
        "京都",
        "都",
        "ROLE:tool",
        "TOOL:getWeather",
        "STATE:output-error",
        "TOOLSTATE:getWeather\x1foutput-error",
        "PART:tool",
        "PART:text",
    }


async def test_search_indexes_the_first_50000_characters_of_a_long_cjk_message(
    pool: Any, alice: User
) -> None:
    # 60,000 distinct-looking ideographs: the vector stays within a tsvector's 1 MB.
    body = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(60_000))
    chat = await make_conversation(pool, alice)
    await say(pool, alice, chat, text("开头" + body + "结尾"))
    assert len(await found(pool, alice, q="开头")) == 1
    assert await found(pool, alice, q="结尾") == []  # past the indexed part


# --- plans -------------------------------------------------------------------------------------

USERS, CONVERSATIONS_PER_USER, MESSAGES_PER_CONVERSATION = 20, 30, 50  # 30,000 messages


@pytest.fixture(scope="module")
def search_url(module_database_url: str) -> str:
    """The module's database with tens of thousands of messages of many users: English and
    Chinese text, tool calls (some failed), files, metadata, tags; ANALYZEd."""
    with psycopg.connect(module_database_url, autocommit=True) as conn:
        conn.execute(
            f"""
            INSERT INTO users (id, username)
            SELECT gen_random_uuid(), 'search' || i FROM generate_series(1, {USERS}) AS i;
            INSERT INTO conversations (id, user_id, title, tags, metadata, updated_at)
            SELECT gen_random_uuid(), u.id, 'chat ' || i,
                   ARRAY['t' || (i % 10)]
                       || CASE WHEN i % 29 = 0 THEN ARRAY['rare'] ELSE '{{}}' END,
                   jsonb_build_object('bucket', i % 7),
                   now() - make_interval(secs => i)
              FROM users AS u, generate_series(1, {CONVERSATIONS_PER_USER}) AS i;
            INSERT INTO messages (conversation_id, seq, id, role, parts, content, metadata,
                                  parts_bytes, parts_count, metadata_bytes, created_at)
            SELECT c.id, s, gen_random_uuid(), p.role, p.parts, p.content,
                   jsonb_build_object('bucket', s % 13), 100, 1, 14,
                   now() - make_interval(secs => s)
              FROM conversations AS c, generate_series(1, {MESSAGES_PER_CONVERSATION}) AS s,
                   LATERAL (
                       SELECT w.role, w.parts, mnemo_parts_text(w.parts) AS content
                         FROM (SELECT CASE WHEN s % 2 = 0 THEN 'user' ELSE 'assistant' END AS role,
                                      jsonb_build_array(
                                          jsonb_build_object('type', 'text', 'text',
                                              (ARRAY['the weather today', 'order status please',
                                                     'book a table', '今天天气很好', '我们开会吧',
                                                     'deploy the service'])[1 + s % 6]
                                              || CASE WHEN s = 13 THEN ' invoice' ELSE '' END
                                              || ' ' || md5(c.id::text || s)))
                                      || CASE WHEN s % 10 = 1 THEN jsonb_build_array(
                                             jsonb_build_object('type', 'tool-search',
                                                 'toolCallId', 'c', 'state',
                                                 CASE WHEN s % 30 = 1 THEN 'output-error'
                                                      ELSE 'output-available' END))
                                         ELSE '[]' END
                                      || CASE WHEN s = 7 THEN jsonb_build_array(jsonb_build_object(
                                             'type', 'file', 'mediaType', 'a/b', 'url', 'u'))
                                         ELSE '[]' END AS parts) AS w
                   ) AS p;
            UPDATE conversations SET last_seq = {MESSAGES_PER_CONVERSATION},
                   message_count = {MESSAGES_PER_CONVERSATION};
            """
        )
        # VACUUM as autovacuum would have by now: it also moves the GIN pending lists into
        # their indexes (the planner counts a long pending list against the index).
        conn.execute("VACUUM ANALYZE")
    return module_database_url


@pytest.fixture
async def seeded(search_url: str) -> AsyncIterator[tuple[asyncpg.Connection[Any], Any, Any]]:
    conn: asyncpg.Connection[Any] = await asyncpg.connect(search_url)
    row = await conn.fetchrow("SELECT id, user_id FROM conversations ORDER BY id LIMIT 1")
    assert row is not None
    try:
        yield conn, row["user_id"], row["id"]
    finally:
        await conn.close()


def _literal(value: Any) -> str:
    """``value`` as SQL text for EXECUTE (which takes no bind parameters)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        items = ",".join(
            ("t" if v else "f")
            if isinstance(v, bool)
            else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
            for v in value
        )
        value = "{" + items + "}"
    return "'" + str(value).replace("'", "''") + "'"


async def plan_nodes(
    conn: asyncpg.Connection[Any], query: Query, args: tuple[Any, ...], *, generic: bool
) -> list[dict[str, Any]]:
    """The plan nodes of ``query``: as asyncpg would plan it with these values, or its generic
    plan (tests/dal/test_plans.py's explain, with array literals)."""
    if not generic:
        raw = await conn.fetchval("EXPLAIN (FORMAT JSON) " + query.sql, *args)
        return list(walk(json.loads(raw)))
    types = ", ".join(p.pg_type for p in query.params)
    async with conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE search_probe ({types}) AS {query.sql.rstrip(';')}")
        try:
            raw = await conn.fetchval(
                "EXPLAIN (FORMAT JSON) EXECUTE search_probe "
                f"({', '.join(_literal(a) for a in args)})"
            )
        finally:
            await conn.execute("DEALLOCATE search_probe")
    return list(walk(json.loads(raw)))


def _search_args(user_id: Any, **given: Any) -> tuple[Any, ...]:
    values = {
        "terms": [],
        "negated": [],
        "clauses": [],
        "facets": [],
        "conversation_id": None,
        "metadata": None,
        "since": None,
        "until": None,
        **given,
    }
    return (
        user_id,
        *(values[k] for k in ("terms", "negated", "clauses", "facets", "conversation_id")),
        values["metadata"],
        values["since"],
        values["until"],
        None,
        None,
        None,
        None,
        21,
        4 << 20,
    )


def _assert_served(nodes: list[dict[str, Any]], *indexes: str) -> None:
    """One of ``indexes`` serves the plan, and no table of Mnemo's is read whole."""
    scans = {(n.get("Node Type"), n.get("Relation Name"), n.get("Index Name")) for n in nodes}
    assert any(name in indexes for _, _, name in scans), scans
    assert not any(
        kind == "Seq Scan" and rel in ("messages", "conversations") for kind, rel, _ in scans
    ), scans


HOUR_AGO = datetime.now(UTC) - timedelta(hours=1)
# The indexes that lead with conversation_id: a search within one conversation may read it so.
CONVERSATION_KEYS = ("messages_pkey", "messages_conversation_id_id_key")
SEARCHES: dict[str, tuple[str, str | tuple[str, ...], dict[str, Any]]] = {
    "text": ("find_messages_matching", "messages_search_idx", {"terms": ["order"]}),
    "selective text": (
        "find_messages_matching",
        "messages_search_idx",
        {"terms": ["invoice", "service"], "negated": [False, True], "clauses": [0, 1]},
    ),
    "phrase": ("find_messages_matching", "messages_search_idx", {"terms": ["book a table"]}),
    "cjk": ("find_messages_matching", "messages_search_idx", {"terms": ["天气"]}),
    "cjk single": ("find_messages_matching", "messages_search_idx", {"terms": ["会"]}),
    "text and everything": (
        "find_messages_matching",
        # A narrow created_at range may be read by the created_at index instead.
        ("messages_search_idx", "messages_user_created_idx"),
        {
            "terms": ["weather"],
            "facets": ["ROLE:user"],
            "metadata": '{"bucket": 3}',
            "since": HOUR_AGO,
            "until": HOUR_AGO + timedelta(days=1),
        },
    ),
}


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
@pytest.mark.parametrize("case", list(SEARCHES))
async def test_search_messages_is_served_by_its_index(
    seeded: Any, case: str, generic: bool
) -> None:
    conn, user_id, _ = seeded
    name, index, given = SEARCHES[case]
    given = {
        "negated": [False] * len(given.get("terms", [])),
        "clauses": list(range(len(given.get("terms", [])))),
        **given,
    }
    nodes = await plan_nodes(conn, Q[name], _search_args(user_id, **given), generic=generic)
    indexes = (index,) if isinstance(index, str) else index
    _assert_served(nodes, *indexes)
    assert set(indexes) <= set(Q[name].uses)


FACETS = {
    "tool": ["TOOL:search"],
    "state": ["STATE:output-error"],
    "part type": ["PART:file"],
    "role": ["ROLE:user"],
    "tool and state": ["TOOLSTATE:search\x1foutput-error", "ROLE:assistant"],
}


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
@pytest.mark.parametrize("case", list(FACETS))
async def test_search_messages_by_facets_is_served_by_its_indexes(
    seeded: Any, case: str, generic: bool
) -> None:
    """The newest messages by messages_user_created_idx, then (for a rare facet) the GIN
    index: both in the plan, whichever runs."""
    conn, user_id, conversation_id = seeded
    everywhere = (user_id, FACETS[case], None, None, None, None, None, None, None, 21, 4 << 20)
    nodes = await plan_nodes(conn, Q["find_messages_by_facets"], everywhere, generic=generic)
    _assert_served(nodes, "messages_search_idx")
    _assert_served(nodes, "messages_user_created_idx")
    # All the filters, within one conversation: its own keys may read fewer rows.
    filtered = (
        *(user_id, FACETS[case], conversation_id, '{"bucket": 2}', HOUR_AGO, None),
        *(HOUR_AGO, conversation_id, 9, 21, 4 << 20),
    )
    nodes = await plan_nodes(conn, Q["find_messages_by_facets"], filtered, generic=generic)
    _assert_served(nodes, "messages_search_idx", *CONVERSATION_KEYS)
    _assert_served(nodes, "messages_user_created_idx")


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_search_messages_without_text_is_served_by_its_index(
    seeded: Any, generic: bool
) -> None:
    conn, user_id, conversation_id = seeded
    cases = [
        (
            "find_messages_by_metadata",
            "messages_search_idx",
            (user_id, '{"bucket": 5}', None, None, None, None, None, None, 21, 4 << 20),
        ),
        (
            "find_messages_by_metadata",
            "messages_user_created_idx",
            (user_id, '{"bucket": 5}', None, None, None, None, None, None, 21, 4 << 20),
        ),
        (
            # One conversation: its messages by its keys may be fewer to read.
            "find_messages_by_metadata",
            ("messages_search_idx", *CONVERSATION_KEYS),
            (user_id, '{"bucket": 5}', conversation_id, HOUR_AGO, None, None, None, None, 21, 99),
        ),
        (
            "find_messages_recent",
            "messages_user_created_idx",
            (user_id, None, None, None, None, None, None, 21, 4 << 20),
        ),
        (
            "find_messages_recent",
            ("messages_user_created_idx", *CONVERSATION_KEYS),
            (user_id, conversation_id, HOUR_AGO, datetime.now(UTC), None, None, None, 21, 99),
        ),
        (
            "find_messages_recent",
            "messages_user_created_idx",
            (user_id, None, None, None, HOUR_AGO, conversation_id, 3, 21, 4 << 20),
        ),
    ]
    for name, index, args in cases:
        nodes = await plan_nodes(conn, Q[name], args, generic=generic)
        _assert_served(nodes, *((index,) if isinstance(index, str) else index))


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_list_conversations_filters_are_served_by_their_indexes(
    seeded: Any, generic: bool
) -> None:
    conn, user_id, _ = seeded
    cases = [
        (
            "list_conversations_matching",
            (user_id, ["chat"], [False], [0], None, False, None, None, None, 21, 4 << 20),
        ),
        (
            "list_conversations_matching",
            (user_id, ["天气"], [False], [0], ["t1"], True, '{"bucket": 1}', None, None, 21, 99),
        ),
        ("list_conversations_tagged", (user_id, ["rare"], False, None, None, None, 21, 4 << 20)),
        (
            "list_conversations_tagged",
            (user_id, ["rare", "t3"], True, '{"bucket": 2}', None, None, 21, 4 << 20),
        ),
        ("list_conversations_by_metadata", (user_id, '{"bucket": 3}', None, None, 21, 4 << 20)),
    ]
    for name, args in cases:
        nodes = await plan_nodes(conn, Q[name], args, generic=generic)
        # A user's few dozen conversations may be cheaper to read by the list's own index.
        _assert_served(nodes, "conversations_search_idx", "conversations_user_updated_idx")
        if name == "list_conversations_matching":
            _assert_served(nodes, "messages_search_idx")


async def test_search_over_the_seeded_data_finds_only_the_users_messages(seeded: Any) -> None:
    conn, user_id, _ = seeded
    total = await conn.fetchval(
        "SELECT count(*) FROM messages AS m JOIN conversations AS c ON c.id = m.conversation_id"
        " WHERE c.user_id = $1 AND m.content LIKE '%天气%'",
        user_id,
    )
    assert total > 0
    rows = await conn.fetch(
        Q["find_messages_matching"].sql,
        *_search_args(user_id, terms=["天气"], negated=[False], clauses=[0])[:-2],
        10_000,
        1 << 40,
    )
    assert len(rows) == total


# --- session state -----------------------------------------------------------------------------


async def session_exercise(pool: Any, settings: Settings, run: SessionRun) -> None:
    """Search, for tests/test_session_state.py."""
    user = await run.one("make_user", lambda: make_user(pool))
    chat = await run.one("make_conversation", lambda: make_conversation(pool, user, "search"))
    await run.one("insert_message", lambda: say(pool, user, chat, [tool("x"), *text("hello")]))
    steps: list[tuple[str, Any]] = []
    for search in ({"q": "hello"}, {"tool": "x"}, {"metadata": {}}, {}):
        steps.append(
            (
                f"search_messages {search}",
                lambda search=search: messages.search_messages(
                    pool, user_id=user.id, search=MessageSearch(**search), limit=5
                ),
            )
        )
    for filters in ({"q": "hello"}, {"tags": ["a"]}, {"metadata": {"a": 1}}):
        steps.append(
            (
                f"list_conversations {filters}",
                lambda filters=filters: conversations.list_conversations(
                    pool, user_id=user.id, limit=5, **filters
                ),
            )
        )
    await run(steps)
