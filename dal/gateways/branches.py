"""Branches of a conversation (README "Branches"), scoped by the caller's membership: the
active branch's switch, a message's siblings, and the messages of any branch by its leaf.

A switch is two statements in one transaction (``dal.usecases.branches.switch_branch``):
``get_branch_lock`` first, so that ``update_active_leaf`` sees every message appended before.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from dal.cursors import check_limit
from dal.database import Executor, fetch_all, fetch_one
from dal.errors import NotFound, NotPermitted
from dal.queries import Q
from dal.records.branches import ActiveBranch, Siblings
from dal.records.messages import Message, MessagePage

# The default of APP_MAX_PAGE_BYTES, for callers that pass no limit of their own.
MAX_PAGE_BYTES = 4 * 1024 * 1024


def _not_permitted() -> NotPermitted:
    return NotPermitted("your role in this conversation may not switch its branch")


@dataclass(frozen=True, slots=True)
class BranchLock:
    """What ``get_branch_lock`` found: the seq of the message asked for (None if none was
    asked for) and whether the draft's id is already stored."""

    target_seq: int | None
    stored: bool


async def get_branch_lock(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    message_id: UUID | None,
    draft_id: UUID | None = None,
) -> BranchLock:
    """Lock the conversation's row until the caller's transaction ends (run it in one):
    appends and switches of its branch wait. NotFound if the caller is not a member or
    ``message_id`` (when given) is not a message of it; NotPermitted if the caller's role may
    not switch_branch."""
    row = await fetch_one(db, Q["get_branch_lock"], user_id, conversation_id, message_id, draft_id)
    if row is None:
        raise NotFound("conversation", conversation_id)
    if not row["allowed"]:
        raise _not_permitted()
    if message_id is not None and row["target_seq"] is None:
        raise NotFound("message", message_id)
    return BranchLock(target_seq=row["target_seq"], stored=row["stored"])


async def update_active_leaf(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    message_id: UUID | None,
    descend: bool = True,
) -> ActiveBranch:
    """Make the path to ``message_id`` the active branch (one statement; run it after
    ``get_branch_lock`` in the same transaction). With ``descend`` the branch goes on below it
    to the newest message written below it; ``message_id`` None leaves no message active.
    NotFound if the caller is not a member or the message is not in the conversation;
    NotPermitted if the caller's role may not switch_branch."""
    row = await fetch_one(
        db, Q["update_active_leaf"], user_id, conversation_id, message_id, descend
    )
    if row is None:
        raise NotFound("message", message_id)
    if not row["allowed"]:
        raise _not_permitted()
    return ActiveBranch.from_values(
        {
            "conversation_id": conversation_id,
            "leaf_seq": row["leaf_seq"],
            "fork_seq": row["fork_seq"],
            "activated": row["activated"],
            "deactivated": row["deactivated"],
        }
    )


async def list_message_siblings(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    message_id: UUID,
    limit: int = 50,
    after: int | None = None,
) -> Siblings:
    """The siblings of a message (itself included), oldest first, after seq ``after``; which
    one is on the active branch. NotFound if the message is missing or the caller is not a
    member who may read."""
    check_limit(limit)
    rows = await fetch_all(
        db,
        Q["list_message_siblings"],
        user_id,
        conversation_id,
        message_id,
        after or 0,
        limit + 1,
    )
    if not rows:
        raise NotFound("message", message_id)
    items: list[Message] = []
    active_id: UUID | None = None
    for row in rows[:limit]:
        if row["seq"] is None:  # the message alone: no sibling after ``after``
            break
        values = dict(row.items())
        if values.pop("active"):
            active_id = values["id"]
        items.append(Message.from_values(values))
    return Siblings.from_values(
        {"items": items, "active_id": active_id, "has_more": len(rows) > limit}
    )


async def list_branch_messages(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    leaf_id: UUID,
    limit: int = 50,
    before: int | None = None,
    max_bytes: int = MAX_PAGE_BYTES,
) -> MessagePage:
    """A page of the branch that ends at message ``leaf_id``, oldest first: its newest
    ``limit`` messages, or with ``before=S`` (the first seq of the page before, a message of
    this branch) the ``limit`` messages above S. A page also ends before its messages exceed
    ``max_bytes``, but holds at least one; ``has_more`` when older ones exist. NotFound if the
    leaf (or seq ``before``) is not a message of the conversation or the caller is not a
    member who may read."""
    check_limit(limit)
    rows = await fetch_all(
        db,
        Q["list_branch_messages"],
        user_id,
        conversation_id,
        leaf_id,
        before,
        limit + 1,
        max_bytes,
    )
    if not rows:
        raise NotFound("message", leaf_id)
    if rows[0]["seq"] is None:  # the start alone: nothing above it
        return MessagePage(items=[], has_more=False)
    items = [row for row in rows if row["parts"] is not None]
    return MessagePage.from_row(
        {"items": Message.from_rows(items), "has_more": len(items) < len(rows)}
    )
