"""The search benchmark's data sets: users, conversations and messages in Mnemo's own tables,
generated from ``bench/search/corpus.py`` and loaded with COPY.

A scale is a number of users, conversations and messages (1,000,000 messages over 10,000
conversations of 100 users; 100,000 over 1,000 conversations of the same 100 users). Every
conversation is a generator of its own messages, with a random generator seeded from the
scale and its index, so a scale's data are the same on every run; the messages of all
conversations are merged in time order, as an app appends them, and loaded in that order.

How a message gets into ``messages``: rows are copied (``copy_records_to_table``) into an
unlogged staging table holding what a client sends (conversation, seq, id, role, parts,
metadata, time), then one ``INSERT ... SELECT`` per chunk moves them into ``messages``
deriving every other column with the functions ``insert_message`` uses (``content`` from
``mnemo_parts_text``, ``parts_bytes``, ``parts_count``, ``metadata_bytes``, ``draft_digest``):
a generated column, a default or a trigger of ``messages`` is filled as for an app's insert.
While the server moves one chunk, Python generates the next. Indexes that back no constraint
are dropped before the load and built again from their own definitions afterwards (one sort
each, instead of a million index insertions); then the conversations' counters are set from
their messages, and everything is VACUUM ANALYZEd.

A built data set is kept as a database named after a key (the generator's version, the scale,
and a digest of the migrations), on the bench's own embedded server under
``DATA_DIR/bench/pg`` (reused by the next run; databases of older keys are dropped). On
``DATABASE_URL``'s server it is dropped after the run unless asked to keep it.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import asyncpg
import orjson

from bench._report import log
from bench.search import corpus
from dal import migrate

# Bump when the generated data change: cached data sets of another version are rebuilt.
GENERATOR_VERSION = 1
PREFIX = "mnemo_bench_search"
BASE_TIME = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
YEAR = 365 * 24 * 3600.0
CHUNK = 50_000  # messages per COPY and INSERT ... SELECT

# Probe terms: a word's share of one user's messages for it to count as selective / broad.
SELECTIVE = (0.0005, 0.01)
BROAD_WORDS = ("order", "please", "help", "time", "thanks", "account", "check")
ORDER_RE = re.compile(r"ORD-\d{5}")
WORD_RE = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Scale:
    name: str
    users: int
    conversations: int
    messages: int

    @property
    def label(self) -> str:
        return (
            f"{self.messages:,} messages, {self.conversations:,} conversations, {self.users} users"
        )


SCALES = {
    "10k": Scale("10k", 100, 100, 10_000),
    "100k": Scale("100k", 100, 1_000, 100_000),
    "1m": Scale("1m", 100, 10_000, 1_000_000),
}


def migrations_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(migrate.MIGRATIONS_DIR.glob("*.sql")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def database_name(scale: Scale) -> str:
    key = f"{GENERATOR_VERSION}:{scale}:{migrations_digest()}"
    return f"{PREFIX}_{scale.name}_{hashlib.sha256(key.encode()).hexdigest()[:12]}"


# --- generation ---------------------------------------------------------------------------


def uuid7(ms: int, rng: random.Random) -> uuid.UUID:
    """A UUIDv7 of the time ``ms`` with random bits from ``rng`` (reproducible ids)."""
    rand = rng.getrandbits(74)
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62
    return uuid.UUID(int=value | (rand & (2**62 - 1)))


def user_id(index: int) -> uuid.UUID:
    rng = random.Random(f"user-{index}")  # the same users at every scale
    return uuid7(int((BASE_TIME - 2 * YEAR) * 1000) + index, rng)


def username(index: int) -> str:
    return f"bench-user-{index:03d}"


@dataclass
class Conversation:
    index: int
    id: uuid.UUID
    user: int
    lang: str
    start: float
    messages: int
    title: str
    tags: list[str]
    metadata: dict[str, Any]
    seed: str


def plan(scale: Scale) -> list[Conversation]:
    """Every conversation of the scale: owner, language, start, size, title, tags, metadata."""
    rng = random.Random(f"plan-{GENERATOR_VERSION}-{scale.name}")
    base, extra = divmod(scale.messages, scale.conversations)
    counts = [base + (i < extra) for i in range(scale.conversations)]
    for i in range(0, scale.conversations - 1, 2):  # vary sizes, keep the total
        delta = rng.randint(-(counts[i] * 4) // 5, (counts[i] * 4) // 5)
        counts[i] += delta
        counts[i + 1] -= delta
    tag_weights = [1.0 / rank for rank in range(1, len(corpus.TAGS) + 1)]
    conversations = []
    for i, count in enumerate(counts):
        lang = rng.choices(("en", "zh", "mixed"), weights=(65, 20, 15))[0]
        start = BASE_TIME - YEAR * rng.random()
        tags = sorted(
            set(rng.choices(corpus.TAGS, weights=tag_weights, k=rng.choice((0, 1, 1, 2, 3))))
        )
        metadata: dict[str, Any] = {"channel": rng.choice(corpus.CHANNELS)}
        if rng.random() < 0.1:
            metadata["customer_tier"] = "enterprise"
        if rng.random() < 0.2:
            metadata["priority"] = "high"
        conversations.append(
            Conversation(
                index=i,
                id=uuid7(int(start * 1000), rng),
                user=i % scale.users,
                lang=lang,
                start=start,
                messages=count,
                title=corpus.title(rng, lang),
                tags=tags,
                metadata=metadata,
                seed=f"conversation-{GENERATOR_VERSION}-{scale.name}-{i}",
            )
        )
    return conversations


def _tool_part(rng: random.Random) -> dict[str, Any]:
    call = f"call_{rng.getrandbits(48):012x}"
    if rng.random() < 0.2:
        part: dict[str, Any] = {
            "type": "dynamic-tool",
            "toolName": rng.choice(corpus.DYNAMIC_TOOLS),
            "toolCallId": call,
        }
    else:
        part = {"type": "tool-" + rng.choice(corpus.TOOLS), "toolCallId": call}
    part["input"] = {"query": " ".join(corpus.EN.draw(rng, rng.randint(2, 5)))}
    state = rng.random()
    if state < 0.08:
        part["state"] = "output-error"
        part["errorText"] = rng.choice(corpus.ERRORS)
    elif state < 0.12:
        part["state"] = "input-available"
    else:
        part["state"] = "output-available"
        part["output"] = {
            "results": rng.randint(0, 20),
            "summary": " ".join(corpus.EN.draw(rng, rng.randint(3, 10))),
        }
    return part


def _message(
    rng: random.Random, conversation: Conversation, seq: int
) -> tuple[str, list[dict[str, Any]], dict[str, Any], str]:
    """role, parts, metadata and the text of message ``seq`` of ``conversation``."""
    lang = conversation.lang
    metadata: dict[str, Any] = {}
    if seq % 2 == 1:
        role = "user"
        body = corpus.text(rng, lang, rng.randint(4, 30))
        parts: list[dict[str, Any]] = [{"type": "text", "text": body}]
        if rng.random() < 0.02:
            name = rng.choice(("receipt", "screenshot", "invoice", "photo"))
            parts.insert(
                0,
                {
                    "type": "file",
                    "mediaType": "image/png",
                    "filename": f"{name}.png",
                    "url": f"https://files.example.com/{rng.getrandbits(64):016x}/{name}.png",
                },
            )
        if lang != "en":
            metadata["lang"] = lang
        elif rng.random() < 0.3:
            metadata["client"] = rng.choice(corpus.CHANNELS)
        return role, parts, metadata, body
    role = "assistant"
    body = corpus.text(rng, lang, rng.randint(15, 90))
    parts = [{"type": "text", "text": body}]
    kind = rng.random()
    if kind < 0.10:
        parts[:0] = [{"type": "step-start"}, _tool_part(rng)]
        if rng.random() < 0.25:  # a second call in the same step
            parts.insert(2, _tool_part(rng))
    elif kind < 0.15:
        reasoning = corpus.text(rng, "en", rng.randint(10, 40))
        parts.insert(0, {"type": "reasoning", "text": reasoning})
    elif kind < 0.18:
        parts.append(
            {
                "type": "source-url",
                "sourceId": f"src-{rng.randint(1, 9)}",
                "url": f"https://docs.example.com/{'-'.join(corpus.EN.draw(rng, 3))}",
                "title": corpus.title(rng, "en"),
            }
        )
    if rng.random() < 0.7:
        metadata["model"] = rng.choice(corpus.MODELS)
        metadata["usage"] = {"inputTokens": rng.randint(50, 4000), "outputTokens": len(body)}
    if rng.random() < 0.01:
        metadata["feedback"] = "negative"
    return role, parts, metadata, body


Row = tuple[Any, ...]  # (created_at s, user, conversation_id, seq, id, role, parts, metadata, text)


def messages_of(conversation: Conversation) -> Iterator[Row]:
    rng = random.Random(conversation.seed)
    at = conversation.start
    for seq in range(1, conversation.messages + 1):
        at += rng.uniform(5, 120) if seq % 2 == 0 else rng.uniform(10, 900)
        role, parts, metadata, body = _message(rng, conversation, seq)
        message_id = uuid7(int(at * 1000), rng)
        yield (at, conversation.user, conversation.id, seq, message_id, role, parts, metadata, body)


def transfer_scale(messages: int) -> Scale:
    """The export/import data (``transfer_plan``): twice ``messages`` over two users."""
    return Scale(f"transfer{messages}", 2, 1 + messages // 1000, 2 * (messages // 1000) * 1000)


def transfer_plan(scale: Scale) -> list[Conversation]:
    """The export/import data: user 0 has one conversation of half the messages; user 1 the
    other half, in conversations of 1,000."""
    rng = random.Random(f"transfer-{GENERATOR_VERSION}-{scale.messages}")
    half = scale.messages // 2
    sizes = [(0, half)] + [(1, 1000)] * (half // 1000)
    conversations = []
    for i, (user, size) in enumerate(sizes):
        start = BASE_TIME - YEAR * rng.random()
        conversations.append(
            Conversation(
                index=i,
                id=uuid7(int(start * 1000), rng),
                user=user,
                lang=rng.choice(("en", "en", "zh", "mixed")),
                start=start,
                messages=size,
                title=corpus.title(rng, "en"),
                tags=["support"],
                metadata={"channel": "web"},
                seed=f"transfer-{GENERATOR_VERSION}-{i}",
            )
        )
    return conversations


@dataclass
class Counts:
    """How many of each user's messages hold each probe term (counted as generated)."""

    messages: list[int]
    words: list[Counter[str]]
    cjk: list[Counter[str]]
    orders: list[Counter[str]]

    @classmethod
    def empty(cls, users: int) -> Counts:
        return cls(
            [0] * users,
            [Counter() for _ in range(users)],
            *[[Counter() for _ in range(users)] for _ in range(2)],
        )


def _fair_words() -> list[str]:
    """English words that no other word of the list contains or shares a stem with (so that
    a substring match and a stemmed match find the same messages)."""
    words = corpus.EN.words
    fair = []
    for word in words:
        if len(word) < 4:
            continue
        if any(other != word and (word in other or other[:5] == word[:5]) for other in words):
            continue
        fair.append(word)
    return fair


def _cjk_words() -> list[str]:
    words = corpus.ZH.words
    return [w for w in words if len(w) == 2 and not any(o != w and w in o for o in words)]


FAIR_WORDS = frozenset(_fair_words()) | frozenset(BROAD_WORDS)
CJK_WORDS = tuple(_cjk_words())
CJK_SET = frozenset(CJK_WORDS)


def count(counts: Counts, user: int, body: str) -> None:
    counts.messages[user] += 1
    lowered = body.lower()
    counts.words[user].update(FAIR_WORDS.intersection(WORD_RE.findall(lowered)))
    if not body.isascii():
        pairs = (body[i : i + 2] for i in range(len(body) - 1))
        counts.cjk[user].update(CJK_SET.intersection(pairs))
    if "ORD-" in body:
        counts.orders[user].update(set(ORDER_RE.findall(body)))


# --- loading ------------------------------------------------------------------------------

STAGE_MESSAGES = """
CREATE UNLOGGED TABLE bench_stage_messages (
    conversation_id uuid, seq bigint, id uuid, role text, parts jsonb, metadata jsonb,
    created_at timestamptz)
"""
# What insert_message derives from a draft, computed by the same functions ({owner}: the
# conversation's owner, where messages has a user_id column as insert_message writes it).
MOVE_MESSAGES = """
INSERT INTO messages (conversation_id, seq, id, role, parts, content, metadata, status,
                      created_at, updated_at, parts_bytes, parts_count, metadata_bytes,
                      draft_digest{owner_column})
SELECT s.conversation_id, s.seq, s.id, s.role, s.parts, mnemo_parts_text(s.parts), s.metadata,
       'complete', s.created_at, s.created_at, mnemo_parts_bytes(s.parts),
       jsonb_array_length(s.parts), octet_length(s.metadata::text),
       mnemo_message_digest(s.role, s.parts, s.metadata, 'complete'){owner}
  FROM bench_stage_messages AS s
 ORDER BY s.created_at;
TRUNCATE bench_stage_messages;
"""
HAS_OWNER = """
SELECT EXISTS (SELECT 1 FROM information_schema.columns
                WHERE table_schema = 'public' AND table_name = 'messages'
                  AND column_name = 'user_id')
"""
OWNER = """,
       (SELECT c.user_id FROM conversations AS c WHERE c.id = s.conversation_id)"""
STAGE_CONVERSATIONS = """
CREATE UNLOGGED TABLE bench_stage_conversations (
    id uuid, user_id uuid, title text, metadata jsonb, tags text[], created_at timestamptz)
"""
MOVE_CONVERSATIONS = """
INSERT INTO conversations (id, user_id, title, metadata, tags, created_at, updated_at,
                           draft_digest)
SELECT s.id, s.user_id, s.title, s.metadata, s.tags, s.created_at, s.created_at,
       mnemo_conversation_digest(s.title, s.metadata, s.tags, NULL)
  FROM bench_stage_conversations AS s;
DROP TABLE bench_stage_conversations;
"""
# What each append does to its conversation, for all appends at once.
COUNTERS = """
UPDATE conversations AS c
   SET last_seq = m.last_seq,
       message_count = m.message_count,
       last_message_at = m.last_message_at,
       updated_at = m.last_message_at
  FROM (SELECT conversation_id, max(seq) AS last_seq, count(*) AS message_count,
               max(created_at) AS last_message_at
          FROM messages
         GROUP BY conversation_id) AS m
 WHERE c.id = m.conversation_id
"""
# Indexes of the public schema that back no constraint: dropped before the load.
LOOSE_INDEXES = """
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
  FROM pg_index AS i
  JOIN pg_class AS t ON t.oid = i.indrelid
  JOIN pg_namespace AS n ON n.oid = t.relnamespace
 WHERE n.nspname = 'public'
   AND t.relname NOT LIKE '\\_yoyo%' AND t.relname NOT LIKE 'yoyo%'
   AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = i.indexrelid)
 ORDER BY 1
"""
TERMS = """
CREATE TABLE bench_search_terms (
    user_index int NOT NULL, user_id uuid NOT NULL, kind text NOT NULL, term text NOT NULL,
    matches int NOT NULL, messages int NOT NULL)
"""


def _iso(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def load(
    url: str, scale: Scale, conversations: list[Conversation] | None = None
) -> dict[str, Any]:
    """Generate ``scale`` (its ``plan``, or ``conversations``) into the migrated, empty
    database at ``url``; what it took."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    conn = await asyncpg.connect(url)  # no codecs: jsonb goes as text
    try:
        await conn.execute("SET maintenance_work_mem = '256MB'; SET synchronous_commit = off")
        loose = await conn.fetch(LOOSE_INDEXES)
        for index in loose:
            await conn.execute(f"DROP INDEX {index['name']}")
        users = [
            (user_id(i), username(i), _iso(BASE_TIME - 2 * YEAR), _iso(BASE_TIME - 2 * YEAR))
            for i in range(scale.users)
        ]
        await conn.copy_records_to_table(
            "users", records=users, columns=["id", "username", "created_at", "updated_at"]
        )
        if conversations is None:
            conversations = plan(scale)
        owned = await conn.fetchval(HAS_OWNER)
        move = MOVE_MESSAGES.format(
            owner_column=", user_id" if owned else "", owner=OWNER if owned else ""
        )
        await conn.execute(STAGE_CONVERSATIONS)
        await conn.copy_records_to_table(
            "bench_stage_conversations",
            records=[
                (c.id, users[c.user][0], c.title, _json(c.metadata), c.tags, _iso(c.start))
                for c in conversations
            ],
        )
        await conn.execute(MOVE_CONVERSATIONS)
        await conn.execute(STAGE_MESSAGES)
        counts = Counts.empty(scale.users)
        merged = heapq.merge(*(messages_of(c) for c in conversations), key=itemgetter(0))
        moving: asyncio.Task[str] | None = None
        done = 0
        generate = 0.0
        while True:
            tick = time.perf_counter()
            chunk = []
            for at, user, conversation_id, seq, message_id, role, parts, metadata, body in merged:
                chunk.append(
                    (
                        conversation_id,
                        seq,
                        message_id,
                        role,
                        _json(parts),
                        _json(metadata),
                        _iso(at),
                    )
                )
                count(counts, user, body)
                if len(chunk) == CHUNK:
                    break
            generate += time.perf_counter() - tick
            if moving is not None:
                await moving
            if not chunk:
                break
            await conn.copy_records_to_table("bench_stage_messages", records=chunk)
            moving = asyncio.ensure_future(conn.execute(move))
            await asyncio.sleep(0)  # sent: the server moves this chunk while we make the next
            done += len(chunk)
            if done % (CHUNK * 4) == 0:
                log(f"search: {scale.name}: {done:,} of {scale.messages:,} messages")
        await conn.execute("DROP TABLE bench_stage_messages")
        timings["generate_s"] = generate
        timings["copy_s"] = time.perf_counter() - started - generate
        tick = time.perf_counter()
        for index in loose:
            await conn.execute(index["definition"])
        timings["indexes_s"] = time.perf_counter() - tick
        tick = time.perf_counter()
        await conn.execute(COUNTERS)
        await store_terms(conn, scale, users, counts)
        await conn.execute("VACUUM (ANALYZE) users, conversations, messages")
        await conn.execute("VACUUM (ANALYZE)")  # any side table a migration added
        timings["vacuum_analyze_s"] = time.perf_counter() - tick
        timings["total_s"] = time.perf_counter() - started
        sizes = await conn.fetchrow(
            "SELECT pg_total_relation_size('messages') AS messages,"
            " pg_relation_size('messages') AS heap, pg_database_size(current_database()) AS db"
        )
        return {
            "scale": scale.name,
            "messages": scale.messages,
            "conversations": scale.conversations,
            "users": scale.users,
            "rebuilt_indexes": [index["name"] for index in loose],
            "seconds": {k: round(v, 1) for k, v in timings.items()},
            "bytes": dict(sizes),
        }
    finally:
        await conn.close()


async def store_terms(
    conn: asyncpg.Connection[Any], scale: Scale, users: list[Row], counts: Counts
) -> None:
    """The probe terms of each user, with the number of their messages that hold each."""
    await conn.execute(TERMS)
    rows = []
    for i, (uid, *_rest) in enumerate(users):
        total = counts.messages[i]
        for word, n in counts.words[i].items():
            kind = "broad" if word in BROAD_WORDS else "word"
            rows.append((i, uid, kind, word, n, total))
        rows += [(i, uid, "cjk", w, n, total) for w, n in counts.cjk[i].items()]
        orders = sorted(counts.orders[i].items())
        rows += [(i, uid, "order", w, n, total) for w, n in orders[:200]]
    await conn.copy_records_to_table("bench_search_terms", records=rows)
    await conn.execute("ANALYZE bench_search_terms")


@asynccontextmanager
async def admin(server_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    conn = await asyncpg.connect(server_url)
    try:
        yield conn
    finally:
        await conn.close()
