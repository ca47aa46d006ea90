"""The workloads, each run by two contenders on pools built with the same options.

- ``raw``: asyncpg on the pool, running the named query's SQL text with the arguments the
  gateway would pass; it gets ``asyncpg.Record`` objects back and stops there.
- ``mnemo``: the gateway (``dal.gateways.messages``), which builds and validates the
  ``MessageDraft`` a caller passes, translates errors and maps rows to pydantic records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias
from uuid import UUID

import asyncpg

from dal.gateways import conversations, messages, users
from dal.ids import new_id
from dal.queries import Q
from dal.records.conversations import ConversationDraft
from dal.records.messages import MessageDraft
from dal.records.users import UserDraft

# asyncpg.Pool is generic only in asyncpg-stubs, hence the string.
Pool: TypeAlias = "asyncpg.Pool[Any]"
Contender = Literal["raw", "mnemo"]
CONTENDERS: tuple[Contender, ...] = ("raw", "mnemo")

INSERT_SQL = Q["insert_message"].sql
PAGE_SQL = Q["list_messages_latest"].sql
PAGE_LIMIT = 50
APPEND_TEXT = "Hi! Could you summarise what we said about the deployment plan yesterday?"


# --- one operation of each contender ----------------------------------------------------


async def append_raw(pool: Pool, user_id: UUID, conversation_id: UUID) -> None:
    # The arguments messages.insert_message passes for MessageDraft(role=..., parts=[...]):
    # a new UUIDv7, the parts list and metadata dict as given (the jsonb codec encodes them).
    await pool.fetchrow(
        INSERT_SQL,
        user_id,
        conversation_id,
        new_id(),
        "user",
        [{"type": "text", "text": APPEND_TEXT}],
        {},
        "complete",
        messages.MAX_MESSAGE_BYTES,
        messages.MAX_MESSAGE_PARTS,
        None,  # reply_to
        messages.SESSION_TIMEOUT_SECONDS,
        messages.MAX_MESSAGES_PER_CONVERSATION,
        messages.MAX_MESSAGES_PER_USER,
        [],  # the files its parts reference: none
    )


async def append_mnemo(pool: Pool, user_id: UUID, conversation_id: UUID) -> None:
    await messages.insert_message(
        pool,
        user_id=user_id,
        conversation_id=conversation_id,
        draft=MessageDraft(role="user", parts=[{"type": "text", "text": APPEND_TEXT}]),
    )


async def page_raw(pool: Pool, user_id: UUID, conversation_id: UUID) -> None:
    # The gateway fetches limit + 1 rows to tell whether there are more.
    await pool.fetch(PAGE_SQL, user_id, conversation_id, PAGE_LIMIT + 1, messages.MAX_PAGE_BYTES)


async def page_mnemo(pool: Pool, user_id: UUID, conversation_id: UUID) -> None:
    await messages.list_messages(
        pool, user_id=user_id, conversation_id=conversation_id, limit=PAGE_LIMIT
    )


Operation: TypeAlias = Callable[[Pool, UUID, UUID], Awaitable[None]]
APPEND: dict[Contender, Operation] = {"raw": append_raw, "mnemo": append_mnemo}
PAGE: dict[Contender, Operation] = {"raw": page_raw, "mnemo": page_mnemo}


# --- fixtures ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    user_id: UUID
    page_conversation_id: UUID  # holds ``page_messages`` messages; only read
    # Users who join the group workloads' conversations beside the fixture's user (their
    # owner): GROUP_SIZE - 1 of them.
    member_ids: tuple[UUID, ...] = ()


# The members of a group conversation of the group append workload (issue 10: "append to a
# 50-member group", against the single-owner append).
GROUP_SIZE = 50


async def add_members(pool: Pool, conversation_id: UUID, member_ids: tuple[UUID, ...]) -> None:
    """The users join the conversation as members (by SQL, as a members gateway would leave
    them: their rows, the conversation's member_count)."""
    await pool.execute(
        "INSERT INTO conversation_members (conversation_id, user_id, role)"
        " SELECT $1, unnest($2::uuid[]), 'member'",
        conversation_id,
        list(member_ids),
    )
    await pool.execute(
        "UPDATE conversations SET member_count = member_count + $2 WHERE id = $1",
        conversation_id,
        len(member_ids),
    )


async def new_conversation(pool: Pool, user_id: UUID) -> UUID:
    conversation = await conversations.insert_conversation(
        pool, user_id=user_id, draft=ConversationDraft(title="bench")
    )
    return conversation.id


async def make_fixture(pool: Pool, *, page_messages: int) -> Fixture:
    """A user, and a conversation of ``page_messages`` messages for the page workload."""
    user = await users.insert_user(pool, draft=UserDraft(username=f"bench-{new_id().hex[:12]}"))
    conversation_id = await new_conversation(pool, user.id)
    for n in range(page_messages):
        role: Literal["user", "assistant"] = "user" if n % 2 == 0 else "assistant"
        text = f"Message {n}: " + "a few words of a chat reply, " * (1 + n % 8)
        await messages.insert_message(
            pool,
            user_id=user.id,
            conversation_id=conversation_id,
            draft=MessageDraft(role=role, parts=[{"type": "text", "text": text}]),
        )
    member_ids = tuple(new_id() for _ in range(GROUP_SIZE - 1))
    await pool.execute(
        "INSERT INTO users (id, username) SELECT id, 'bench-' || replace(id::text, '-', '')"
        " FROM unnest($1::uuid[]) AS id",
        list(member_ids),
    )
    return Fixture(user_id=user.id, page_conversation_id=conversation_id, member_ids=member_ids)


async def check_same_results(raw_pool: Pool, mnemo_pool: Pool, fixture: Fixture) -> None:
    """Both contenders do the same work: fail loudly if their answers differ."""
    user_id, conversation_id = fixture.user_id, fixture.page_conversation_id
    rows = await raw_pool.fetch(
        PAGE_SQL, user_id, conversation_id, PAGE_LIMIT + 1, messages.MAX_PAGE_BYTES
    )
    page = await messages.list_messages(
        mnemo_pool, user_id=user_id, conversation_id=conversation_id, limit=PAGE_LIMIT
    )
    if [row["id"] for row in rows[-len(page.items) :]] != [m.id for m in page.items]:
        raise RuntimeError("raw and gateway pages differ: the benchmark compares different work")
    conversation_id = await new_conversation(raw_pool, user_id)
    await append_raw(raw_pool, user_id, conversation_id)
    await append_mnemo(mnemo_pool, user_id, conversation_id)
    raw_row, mnemo_row = await raw_pool.fetch(
        "SELECT role, parts, content, metadata, status FROM messages"
        " WHERE conversation_id = $1 ORDER BY seq",
        conversation_id,
    )
    if dict(raw_row) != dict(mnemo_row):
        raise RuntimeError("raw and gateway appends stored different messages")


# --- workloads --------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    kind: Literal["append", "page"]
    target: float  # minimum Mnemo / raw ratio
    ops: int  # operations per contender per round
    clients: int  # concurrent tasks sharing the pool
    members: int = 1  # members of each append conversation (GROUP_SIZE: a group chat)

    async def prepare(self, pool: Pool, fixture: Fixture) -> list[UUID]:
        """The conversation each client works on (not timed).

        Appends: each client gets a fresh conversation of its own, so both contenders start
        from the same state and never queue on one conversation's row lock. Pages: all read
        the fixture's conversation.
        """
        if self.kind == "append":
            targets = [await new_conversation(pool, fixture.user_id) for _ in range(self.clients)]
            for target in targets if self.members > 1 else ():
                await add_members(pool, target, fixture.member_ids[: self.members - 1])
            return targets
        return [fixture.page_conversation_id] * self.clients

    async def run(
        self, pool: Pool, contender: Contender, fixture: Fixture, targets: list[UUID], ops: int
    ) -> tuple[int, float]:
        """Run about ``ops`` operations, split over the clients: (operations, seconds)."""
        operation = (APPEND if self.kind == "append" else PAGE)[contender]
        per_client = max(1, ops // self.clients)

        async def client(conversation_id: UUID) -> None:
            for _ in range(per_client):
                await operation(pool, fixture.user_id, conversation_id)

        start = time.perf_counter()
        if self.clients == 1:
            await client(targets[0])
        else:
            await asyncio.gather(*(client(target) for target in targets))
        return per_client * self.clients, time.perf_counter() - start


def workloads(*, appends: int, concurrent_appends: int, clients: int, pages: int) -> list[Workload]:
    return [
        Workload("append_sequential", "append, 1 client", "append", 0.90, appends, 1),
        Workload(
            "append_concurrent",
            f"append, {clients} clients",
            "append",
            0.90,
            concurrent_appends,
            clients,
        ),
        Workload(
            "append_group",
            f"append, {GROUP_SIZE}-member group",
            "append",
            0.90,
            appends,
            1,
            GROUP_SIZE,
        ),
        Workload("page_50", f"page of {PAGE_LIMIT}, 1 client", "page", 0.75, pages, 1),
    ]
