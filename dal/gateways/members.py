"""Members of shared conversations and their roles (README "Members and roles").

The caller (``user_id``) must be a member of the conversation: anyone else gets NotFound, as if
it did not exist; a member whose role lacks the right gets NotPermitted, and nothing changes.
Each change is two statements in one transaction (a savepoint of the caller's, given a
connection in one): ``get_member_locked`` locks the conversation's row (changes and appends
queue on it), then the change's own statement checks the right, changes the members, keeps
``member_count`` (and the owner) and appends the system message that says what changed
(``{"type": "data-member", "data": {"action", "user_id", "role", "by"}}``), all at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

import asyncpg

from dal.cursors import check_limit, decode_keyset, encode_keyset
from dal.database import Executor, Record, fetch_all, fetch_one, transaction, translating
from dal.errors import Conflict, InvalidInput, LimitReached, NotFound, NotPermitted, OverLimit
from dal.ids import new_id
from dal.queries import Q
from dal.records.members import AddedMember, Member, MemberDraft, MemberPage, MemberPatch

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection = asyncpg.Connection[Any] | PoolConnectionProxy[Any]

# The default of APP_MAX_MEMBERS, for callers of the gateways that pass no limit of their own.
MAX_MEMBERS = 1000
# The keyset before every member (list_members' first page).
_FIRST = (datetime.min.replace(tzinfo=UTC), UUID(int=0))


def _member(row: Record) -> Member:
    return Member.from_values({name: row[name] for name in Member.model_fields})


@asynccontextmanager
async def _locked(db: Executor, user_id: UUID, conversation_id: UUID) -> AsyncIterator[Executor]:
    """A transaction holding conversation ``conversation_id``'s row lock, on a connection of
    ``db`` (a pool's, or ``db`` itself, in a savepoint if it is in a transaction); NotFound if
    ``user_id`` is not a member."""
    if isinstance(db, asyncpg.Pool):
        async with transaction(db) as conn:
            await _lock(conn, user_id, conversation_id)
            yield conn
        return
    conn = cast("Connection", db)
    with translating():
        async with conn.transaction():
            await _lock(conn, user_id, conversation_id)
            yield conn


async def _lock(db: Executor, user_id: UUID, conversation_id: UUID) -> None:
    if await fetch_one(db, Q["get_member_locked"], user_id, conversation_id) is None:
        raise NotFound("conversation", conversation_id)


def _not_permitted(what: str) -> NotPermitted:
    return NotPermitted(f'your role in this conversation may not {what} (README "Roles")')


async def list_members(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    limit: int = 50,
    cursor: str | None = None,
) -> MemberPage:
    """A page of the conversation's members, in the order they joined; pass ``next_cursor``
    back for the next. NotFound unless the caller is a member."""
    check_limit(limit)
    joined_at, member_id = _FIRST
    if cursor:
        joined_at, key = decode_keyset(cursor)
        try:
            member_id = UUID(key)
        except ValueError as exc:
            raise InvalidInput("cursor is not valid") from exc
    rows = await fetch_all(
        db, Q["list_members"], user_id, conversation_id, joined_at, member_id, limit + 1
    )
    if not rows:
        raise NotFound("conversation", conversation_id)
    if not rows[0]["allowed"]:
        raise _not_permitted("read its members")
    items = [_member(row) for row in rows[:limit] if row["user_id"] is not None]
    more = len(rows) > limit
    last = items[-1] if items else None
    return MemberPage(
        items=items,
        next_cursor=encode_keyset(last.joined_at, str(last.user_id)) if more and last else None,
    )


async def insert_member(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    draft: MemberDraft,
    max_members: int = MAX_MEMBERS,
) -> AddedMember:
    """Add ``draft.user_id`` with ``draft.role`` (which must rank below the caller's own; the
    caller's role needs add_member: else NotPermitted). Already a member with that role: the
    member, ``created`` False, nothing changed; with another role: Conflict (PATCH changes it).
    NotFound if the user is missing or deactivated (alike); LimitReached
    (``direct_conversation_full``) when a direct conversation has its two members; OverLimit
    at ``max_members`` members (0: no limit)."""
    async with _locked(db, user_id, conversation_id) as conn:
        row = await fetch_one(
            conn,
            Q["insert_member"],
            user_id,
            conversation_id,
            draft.user_id,
            draft.role,
            max_members,
            new_id(),
        )
    if row is None:
        raise NotFound("conversation", conversation_id)
    if not row["allowed"]:
        raise _not_permitted(f"add members, or not as {draft.role}: a role below your own")
    if not row["user_found"]:
        raise NotFound("user", draft.user_id)
    if row["created"]:
        return AddedMember(member=_member(row), created=True)
    if row["user_id"] is not None:
        if row["role"] != draft.role:
            raise Conflict(
                f"user {draft.user_id} is already a member, as {row['role']}: change the role "
                "with PATCH"
            )
        return AddedMember(member=_member(row), created=False)
    if not row["room"]:
        raise LimitReached("a direct conversation has two members", code="direct_conversation_full")
    if not row["within_limit"]:
        raise OverLimit(f"a conversation has at most {max_members} members (APP_MAX_MEMBERS)")
    raise NotFound("conversation", conversation_id)  # pragma: no cover - every case is above


async def update_member_role(
    db: Executor, *, user_id: UUID, conversation_id: UUID, member_id: UUID, patch: MemberPatch
) -> Member:
    """Give member ``member_id`` the role ``patch.role``. The caller's role needs change_role,
    and the member's role, old and new, must rank below it (else NotPermitted); the owner
    giving ``owner`` hands ownership over (the caller becomes an admin). NotFound if either is
    not a member. The role already given: nothing changes."""
    async with _locked(db, user_id, conversation_id) as conn:
        row = await fetch_one(
            conn, Q["update_member_role"], user_id, conversation_id, member_id, patch.role, new_id()
        )
    if row is None:
        raise NotFound("conversation", conversation_id)
    if not row["may"]:
        raise _not_permitted("change roles")
    if not row["found"]:
        raise NotFound("member", member_id)
    if not row["allowed"]:
        raise _not_permitted(
            f"give this member the role {patch.role}: both their role and the new one must "
            "rank below your own"
        )
    return _member(row)


async def delete_member(
    db: Executor, *, user_id: UUID, conversation_id: UUID, member_id: UUID
) -> Member:
    """Remove member ``member_id`` (the caller's role needs remove_member and must outrank the
    member's, else NotPermitted); the removed member comes back. The caller's own id is
    leaving (``delete_member_self``). NotFound if either is not a member."""
    if member_id == user_id:
        return await delete_member_self(db, user_id=user_id, conversation_id=conversation_id)
    async with _locked(db, user_id, conversation_id) as conn:
        row = await fetch_one(
            conn, Q["delete_member"], user_id, conversation_id, member_id, new_id()
        )
    if row is None:
        raise NotFound("conversation", conversation_id)
    if not row["may"]:
        raise _not_permitted("remove members")
    if not row["found"]:
        raise NotFound("member", member_id)
    if not row["allowed"]:
        raise _not_permitted("remove this member: their role must rank below your own")
    return _member(row)


async def delete_member_self(db: Executor, *, user_id: UUID, conversation_id: UUID) -> Member:
    """The caller leaves the conversation; the membership they had comes back. The owner hands
    ownership to the highest-ranked other member (the longest-standing among equals); an owner
    alone gets Conflict (delete the conversation instead). NotFound if not a member."""
    async with _locked(db, user_id, conversation_id) as conn:
        row = await fetch_one(conn, Q["delete_member_self"], user_id, conversation_id, new_id())
    if row is None:
        raise NotFound("conversation", conversation_id)
    if not row["allowed"]:
        raise Conflict("you are the owner and the only member: delete the conversation instead")
    return _member(row)
