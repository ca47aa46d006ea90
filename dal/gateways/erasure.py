"""Erasing a user, batch by batch (queries/erasure.sql). Each function runs one bounded
statement for one user and returns what it did: a count, or counts per table; the order and
the loops are dal.usecases.erasure's."""

from __future__ import annotations

from uuid import UUID

from dal.database import Executor, fetch_all, fetch_one, fetch_value
from dal.queries import Q, Query


async def _count(db: Executor, query: Query, *args: object) -> int:
    return int(await fetch_value(db, query, *args))


async def _counts(db: Executor, query: Query, *args: object) -> dict[str, int]:
    row = await fetch_one(db, query, *args)
    assert row is not None  # an aggregate always returns its row
    return {key: int(value) for key, value in row.items()}


async def delete_erasure_feedback(db: Executor, *, user_id: UUID, batch: int) -> int:
    """Delete up to ``batch`` of the user's feedback rows (the messages' counters follow)."""
    return await _count(db, Q["delete_erasure_feedback"], user_id, batch)


async def list_erasure_shared_conversations(
    db: Executor, *, user_id: UUID, limit: int
) -> list[UUID]:
    """Conversations someone else owns where the user is a member or sent messages."""
    rows = await fetch_all(db, Q["list_erasure_shared_conversations"], user_id, limit)
    return [row["conversation_id"] for row in rows]


async def update_erasure_events(
    db: Executor, *, user_id: UUID, conversation_id: UUID, after_seq: int, batch: int
) -> tuple[int, int]:
    """Anonymize the events of one window (seq in (after_seq, after_seq + batch]) of a
    conversation's log; returns (events changed, the log's newest seq)."""
    row = await fetch_one(
        db, Q["update_erasure_events"], user_id, conversation_id, after_seq, batch
    )
    assert row is not None
    return int(row["scrubbed"]), int(row["last_event_seq"])


async def update_erasure_messages(
    db: Executor, *, user_id: UUID, conversation_id: UUID, batch: int
) -> int:
    """Turn up to ``batch`` of the user's messages in another's conversation into tombstones
    (system messages: only their sender goes)."""
    return await _count(db, Q["update_erasure_messages"], user_id, conversation_id, batch)


async def delete_erasure_membership(db: Executor, *, user_id: UUID, conversation_id: UUID) -> int:
    """Remove the user from another's conversation (1), or nothing (0)."""
    return await _count(db, Q["delete_erasure_membership"], user_id, conversation_id)


async def update_erasure_mentions(db: Executor, *, user_id: UUID, batch: int) -> int:
    """Replace the user's id by null in up to ``batch`` membership-change messages."""
    return await _count(db, Q["update_erasure_mentions"], user_id, batch)


async def update_erasure_retracted_by(db: Executor, *, user_id: UUID, batch: int) -> int:
    """Forget that the user deleted up to ``batch`` messages."""
    return await _count(db, Q["update_erasure_retracted_by"], user_id, batch)


async def update_erasure_edited_by(db: Executor, *, user_id: UUID, batch: int) -> int:
    """Forget that the user wrote up to ``batch`` earlier message versions."""
    return await _count(db, Q["update_erasure_edited_by"], user_id, batch)


async def update_erasure_added_by(db: Executor, *, user_id: UUID, batch: int) -> int:
    """Forget that the user added up to ``batch`` members."""
    return await _count(db, Q["update_erasure_added_by"], user_id, batch)


async def list_erasure_owned_conversations(
    db: Executor, *, user_id: UUID, limit: int
) -> list[UUID]:
    """Up to ``limit`` of the conversations the user owns."""
    rows = await fetch_all(db, Q["list_erasure_owned_conversations"], user_id, limit)
    return [row["id"] for row in rows]


async def delete_erasure_conversation_messages(
    db: Executor, *, user_id: UUID, conversation_id: UUID, batch: int
) -> dict[str, int]:
    """Delete up to ``batch`` messages of a conversation the user owns, with what hangs on
    them; counts per table."""
    return await _counts(
        db, Q["delete_erasure_conversation_messages"], user_id, conversation_id, batch
    )


async def delete_erasure_conversation_events(
    db: Executor, *, user_id: UUID, conversation_id: UUID, batch: int
) -> int:
    """Delete up to ``batch`` events of a conversation the user owns."""
    return await _count(
        db, Q["delete_erasure_conversation_events"], user_id, conversation_id, batch
    )


async def delete_erasure_conversation(
    db: Executor, *, user_id: UUID, conversation_id: UUID
) -> dict[str, int]:
    """Delete a conversation the user owns (its members, sessions, tool-call pairs, itself)."""
    return await _counts(db, Q["delete_erasure_conversation"], user_id, conversation_id)


async def delete_erasure_snapshots(db: Executor, *, user_id: UUID, batch: int) -> int:
    """Delete up to ``batch`` of the user's workspace snapshots."""
    return await _count(db, Q["delete_erasure_snapshots"], user_id, batch)


async def delete_erasure_tasks(db: Executor, *, user_id: UUID, batch: int) -> dict[str, int]:
    """Delete up to ``batch`` of the user's tasks and their events."""
    return await _counts(db, Q["delete_erasure_tasks"], user_id, batch)


async def delete_erasure_checkpoint_writes(db: Executor, *, user_id: UUID, batch: int) -> int:
    """Delete up to ``batch`` pending writes of the user's threads."""
    return await _count(db, Q["delete_erasure_checkpoint_writes"], user_id, batch)


async def delete_erasure_checkpoint_blobs(db: Executor, *, user_id: UUID, batch: int) -> int:
    """Delete up to ``batch`` channel values of the user's threads."""
    return await _count(db, Q["delete_erasure_checkpoint_blobs"], user_id, batch)


async def delete_erasure_checkpoints(db: Executor, *, user_id: UUID, batch: int) -> int:
    """Delete up to ``batch`` checkpoints of the user's threads."""
    return await _count(db, Q["delete_erasure_checkpoints"], user_id, batch)


async def delete_erasure_threads(db: Executor, *, user_id: UUID, batch: int) -> int:
    """Delete up to ``batch`` of the user's threads."""
    return await _count(db, Q["delete_erasure_threads"], user_id, batch)


async def delete_erasure_attachment_chunks(
    db: Executor, *, user_id: UUID, batch: int
) -> dict[str, int]:
    """Delete up to ``batch`` chunks of the user's files (and those files' thumbnails)."""
    return await _counts(db, Q["delete_erasure_attachment_chunks"], user_id, batch)


async def delete_erasure_attachments(db: Executor, *, user_id: UUID, batch: int) -> dict[str, int]:
    """Delete up to ``batch`` of the user's files and every reference to them."""
    return await _counts(db, Q["delete_erasure_attachments"], user_id, batch)


async def delete_erasure_profiles(db: Executor, *, user_id: UUID, batch: int) -> int:
    """Delete up to ``batch`` of the user's runtime profiles."""
    return await _count(db, Q["delete_erasure_profiles"], user_id, batch)


async def delete_erasure_tokens(db: Executor, *, user_id: UUID, batch: int) -> int:
    """Delete up to ``batch`` of the user's API tokens."""
    return await _count(db, Q["delete_erasure_tokens"], user_id, batch)


async def delete_erasure_refresh_tokens(db: Executor, *, user_id: UUID, batch: int) -> int:
    """Delete up to ``batch`` refresh tokens of the user's sign-in sessions."""
    return await _count(db, Q["delete_erasure_refresh_tokens"], user_id, batch)


async def delete_erasure_sessions(db: Executor, *, user_id: UUID, batch: int) -> int:
    """Delete up to ``batch`` of the user's sign-in sessions."""
    return await _count(db, Q["delete_erasure_sessions"], user_id, batch)


async def delete_erasure_login_failures(db: Executor, *, username: str, batch: int) -> int:
    """Delete up to ``batch`` failed sign-in counters of the username."""
    return await _count(db, Q["delete_erasure_login_failures"], username, batch)


async def delete_erasure_user(db: Executor, *, user_id: UUID) -> dict[str, int]:
    """Delete the user's counters and row (and what cascades from it)."""
    return await _counts(db, Q["delete_erasure_user"], user_id)
