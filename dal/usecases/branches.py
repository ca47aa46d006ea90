"""Branches of a conversation (README "Branches"): switching the active branch, and appending
a message that starts a new branch (an edited question, a regenerated answer).

Each runs in one transaction that first locks the conversation's row
(``branches.get_branch_lock``): appends lock the same row, so switches and appends run one at
a time and the active messages always form exactly one path, from a first message to the
conversation's leaf.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from dal.database import transaction
from dal.gateways import branches, messages
from dal.records.branches import ActiveBranch
from dal.records.messages import Appended, MessageDraft


async def switch_branch(
    pool: asyncpg.Pool[Any],
    *,
    user_id: UUID,
    conversation_id: UUID,
    message_id: UUID | None,
    descend: bool = True,
) -> ActiveBranch:
    """Make the branch through ``message_id`` the active one. With ``descend`` (a sibling
    made active) the branch goes on below the message to the newest message written below it
    on any branch (the branch as it was left); without, it ends at the message itself.
    ``None`` leaves no message active (the next append starts a new first message). Costs
    the two branches from where they part, plus with ``descend`` the messages below the
    message (its subtree), never the whole conversation's. NotFound if the caller is not a
    member or the message is not the conversation's; NotPermitted if the caller's role may not
    switch_branch."""
    async with transaction(pool) as conn:
        await branches.get_branch_lock(
            conn, user_id=user_id, conversation_id=conversation_id, message_id=message_id
        )
        return await branches.update_active_leaf(
            conn,
            user_id=user_id,
            conversation_id=conversation_id,
            message_id=message_id,
            descend=descend,
        )


async def append_on_branch(
    pool: asyncpg.Pool[Any],
    *,
    user_id: UUID,
    conversation_id: UUID,
    draft: MessageDraft,
    parent_id: UUID | None,
    max_bytes: int = messages.MAX_MESSAGE_BYTES,
    max_parts: int = messages.MAX_MESSAGE_PARTS,
    session_timeout: float = messages.SESSION_TIMEOUT_SECONDS,
    max_per_conversation: int = messages.MAX_MESSAGES_PER_CONVERSATION,
    max_per_user: int = messages.MAX_MESSAGES_PER_USER,
) -> Appended:
    """Append ``draft`` after message ``parent_id`` rather than after the active leaf, in one
    transaction: the branch ends at the parent (what followed it leaves the active branch and
    stays readable), then the message is appended there and becomes the leaf. An edited
    question is a sibling of the question (``parent_id`` = the question's parent); a
    regenerated answer a sibling of the answer (``parent_id`` = the question). ``parent_id``
    None starts a new first message (the sibling of an edited first message).

    A retry of a stored ``draft.id`` switches nothing and answers as ``insert_message`` does;
    the limits and the session timeout are insert_message's.
    Errors as ``switch_branch`` and ``messages.insert_message``; nothing changes on any.
    """
    async with transaction(pool) as conn:
        lock = await branches.get_branch_lock(
            conn,
            user_id=user_id,
            conversation_id=conversation_id,
            message_id=parent_id,
            draft_id=draft.id,
        )
        if not lock.stored:
            await branches.update_active_leaf(
                conn,
                user_id=user_id,
                conversation_id=conversation_id,
                message_id=parent_id,
                descend=False,
            )
        return await messages.insert_message(
            conn,
            user_id=user_id,
            conversation_id=conversation_id,
            draft=draft,
            max_bytes=max_bytes,
            max_parts=max_parts,
            session_timeout=session_timeout,
            max_per_conversation=max_per_conversation,
            max_per_user=max_per_user,
        )
