"""Erasing a user (README "Erasing a user"): every row they own or wrote deleted, their traces
in others' conversations anonymized, batch by batch (each batch one statement of
``dal.gateways.erasure``, its own short transaction), resumable, with a report of the counts.

The order matters for resuming: the user is deactivated first (their tokens stop working,
nothing new of theirs arrives); in each conversation someone else owns, the event log is
anonymized before their messages become tombstones, and their membership goes last, because
the membership and the messages are how the conversation is found again by a run that was
cut short; the user's row goes at the very end, so a run cut short anywhere can be run again
(by id or username) and finishes.

``TABLES`` is the one place that says, for every table of the schema, how erasure deals with
it: tests/dal/test_erasure.py lists the tables from the catalog and fails on one that is not
here, so a table added later must be classified (and erased) before the suite passes again.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg

from dal.gateways import erasure, users
from dal.records.erasure import ErasureReport

Pool: TypeAlias = "asyncpg.Pool[Any]"
# Rows a batch touches by default (APP_ERASURE_BATCH).
DEFAULT_BATCH = 500
# Conversations fetched at a time (each is then processed in batches).
CONVERSATIONS_AT_ONCE = 20

# How erasure deals with each table (tests/dal/test_erasure.py holds it to the catalog).
# "deleted": the user's rows go; "anonymized": rows stay for others, the user's traces go;
# a table in NO_USER_DATA holds nothing of any user's (the reason says why).
TABLES: Mapping[str, str] = {
    "users": "deleted last (delete_erasure_user); FK cascades take any table added later",
    "api_tokens": "deleted (delete_erasure_tokens)",
    "profiles": "the user's profiles deleted (delete_erasure_profiles)",
    "conversations": "the user's own deleted, whole (delete_erasure_conversation)",
    "conversation_members": "in their conversations deleted; their membership of others' "
    "deleted (delete_erasure_membership); added_by anonymized",
    "messages": "in their conversations deleted; theirs in others' tombstoned; mentions in "
    "membership-change messages and retracted_by anonymized",
    "message_versions": "deleted with their messages; edited_by anonymized",
    "message_feedback": "theirs deleted anywhere; all in their conversations deleted",
    "message_attachments": "with their messages, and every reference to their files",
    "message_tool_calls": "with their conversations (no user column)",
    "chat_sessions": "with their conversations (no user column)",
    "conversation_events": "with their conversations; payloads naming them in others' "
    "conversations anonymized",
    "threads": "deleted (delete_erasure_threads)",
    "checkpoints": "deleted with their threads, in batches",
    "checkpoint_blobs": "deleted with their threads, in batches",
    "checkpoint_writes": "deleted with their threads, in batches",
    "tasks": "deleted (delete_erasure_tasks)",
    "task_events": "deleted with their tasks",
    "workspace_snapshots": "deleted (delete_erasure_snapshots)",
    "attachments": "their files deleted, with every reference to them",
    "attachment_chunks": "deleted, chunk by chunk",
    "attachment_thumbnails": "deleted with their files",
    "attachment_usage": "deleted with the user",
    "user_message_counts": "deleted with the user",
    "user_passwords": "the password hash, deleted with the user (cascade: one row)",
    "auth_sessions": "deleted (delete_erasure_sessions)",
    "refresh_tokens": "deleted before their sessions (delete_erasure_refresh_tokens)",
    "login_failures": "keyed by username: the user's deleted by it (delete_erasure_login_failures)",
}
NO_USER_DATA: Mapping[str, str] = {
    "conversation_roles": "the four roles: a fixed list, no user",
    "conversation_rights": "what each role may do: a fixed table, no user",
    "task_transitions": "the legal task status changes: a fixed table, no user",
}

Progress: TypeAlias = Callable[[str, Mapping[str, int]], Awaitable[None] | None]
# One batch statement of a user's rows: (pool, *, user_id, batch) -> rows touched.
_Batch: TypeAlias = Callable[..., Awaitable[int]]


async def _by_username(pool: Pool, *, username: str, batch: int) -> dict[str, int]:
    """Rows keyed by the username rather than the id (no foreign key to users), deleted by it:
    the failed sign-in counters (README "Identity"), one batch."""
    return {
        "login_failures": await erasure.delete_erasure_login_failures(
            pool, username=username, batch=batch
        )
    }


class _Run:
    """One erasure's figures, and the progress callback fed after each batch."""

    def __init__(self, progress: Progress | None) -> None:
        self.deleted: Counter[str] = Counter()
        self.anonymized: Counter[str] = Counter()
        self.batches = 0
        self._progress = progress

    async def done(self, step: str, figures: Mapping[str, int], *, anonymized: bool = False) -> int:
        """Count one batch; returns the rows it touched."""
        self.batches += 1
        (self.anonymized if anonymized else self.deleted).update(figures)
        if self._progress is not None:
            maybe = self._progress(step, figures)
            if maybe is not None:
                await maybe
        return sum(figures.values())


async def erase_user(
    pool: Pool, *, user_id: UUID, batch: int = DEFAULT_BATCH, progress: Progress | None = None
) -> ErasureReport:
    """Erase the user ``user_id`` (README "Erasing a user"); NotFound if there is none (an
    erasure that finished leaves none). Safe to run again after an interruption: it finishes.
    ``progress(step, counts)`` sees each batch."""
    if not 1 <= batch <= 100_000:
        raise ValueError("batch must be between 1 and 100000")
    user = await users.deactivate_user(pool, user_id=user_id)
    run = _Run(progress)

    async def repeat(step: str, table: str, call: Callable[[], Awaitable[int]]) -> None:
        while await run.done(step, {table: await call()}, anonymized=step.startswith("anon")):
            pass

    async def repeat_counts(step: str, call: Callable[[], Awaitable[dict[str, int]]]) -> None:
        while await run.done(step, await call()):
            pass

    await repeat(
        "feedback",
        "message_feedback",
        lambda: erasure.delete_erasure_feedback(pool, user_id=user_id, batch=batch),
    )
    await _leave_shared_conversations(pool, run, user_id=user_id, batch=batch)
    anonymizing: tuple[tuple[str, str, _Batch], ...] = (
        ("anonymize mentions", "messages", erasure.update_erasure_mentions),
        ("anonymize retracted_by", "messages", erasure.update_erasure_retracted_by),
        ("anonymize edited_by", "message_versions", erasure.update_erasure_edited_by),
        ("anonymize added_by", "conversation_members", erasure.update_erasure_added_by),
    )
    for step, table, call in anonymizing:
        await repeat(step, table, functools.partial(call, pool, user_id=user_id, batch=batch))
    await _delete_own_conversations(pool, run, user_id=user_id, batch=batch)
    await repeat(
        "snapshots",
        "workspace_snapshots",
        lambda: erasure.delete_erasure_snapshots(pool, user_id=user_id, batch=batch),
    )
    await repeat_counts(
        "tasks", lambda: erasure.delete_erasure_tasks(pool, user_id=user_id, batch=batch)
    )
    threads: tuple[tuple[str, str, _Batch], ...] = (
        ("checkpoint writes", "checkpoint_writes", erasure.delete_erasure_checkpoint_writes),
        ("checkpoint blobs", "checkpoint_blobs", erasure.delete_erasure_checkpoint_blobs),
        ("checkpoints", "checkpoints", erasure.delete_erasure_checkpoints),
        ("threads", "threads", erasure.delete_erasure_threads),
    )
    for step, table, call in threads:
        await repeat(step, table, functools.partial(call, pool, user_id=user_id, batch=batch))
    await repeat_counts(
        "attachment chunks",
        lambda: erasure.delete_erasure_attachment_chunks(pool, user_id=user_id, batch=batch),
    )
    await repeat_counts(
        "attachments",
        lambda: erasure.delete_erasure_attachments(pool, user_id=user_id, batch=batch),
    )
    await repeat(
        "profiles",
        "profiles",
        lambda: erasure.delete_erasure_profiles(pool, user_id=user_id, batch=batch),
    )
    await repeat(
        "tokens",
        "api_tokens",
        lambda: erasure.delete_erasure_tokens(pool, user_id=user_id, batch=batch),
    )
    await repeat(
        "refresh tokens",
        "refresh_tokens",
        lambda: erasure.delete_erasure_refresh_tokens(pool, user_id=user_id, batch=batch),
    )
    await repeat(
        "sessions",
        "auth_sessions",
        lambda: erasure.delete_erasure_sessions(pool, user_id=user_id, batch=batch),
    )
    await repeat_counts(
        "by username", lambda: _by_username(pool, username=user.username, batch=batch)
    )
    await run.done("user", await erasure.delete_erasure_user(pool, user_id=user_id))
    return ErasureReport(
        user_id=user.id,
        username=user.username,
        deleted={k: v for k, v in sorted(run.deleted.items()) if v},
        anonymized={k: v for k, v in sorted(run.anonymized.items()) if v},
        batches=run.batches,
    )


def _never_again(found: list[UUID], done: set[UUID]) -> None:
    """A conversation dealt with comes back only if something of the user's arrived in it
    meanwhile (they are deactivated: nothing should); stop rather than loop. Run it again."""
    again = done.intersection(found)
    if again:
        raise RuntimeError(
            f"conversation {min(again)} still holds rows of the user after its batches: "
            "run the erasure again"
        )
    done.update(found)


async def _leave_shared_conversations(pool: Pool, run: _Run, *, user_id: UUID, batch: int) -> None:
    """In each conversation someone else owns where the user is a member or wrote: the log's
    payloads naming them anonymized (window by window), their messages tombstoned, their
    membership deleted, in that order (see the module's doc)."""
    done: set[UUID] = set()
    while found := await erasure.list_erasure_shared_conversations(
        pool, user_id=user_id, limit=CONVERSATIONS_AT_ONCE
    ):
        _never_again(found, done)
        for conversation_id in found:
            after, last = 0, 1
            while after < last:
                scrubbed, last = await erasure.update_erasure_events(
                    pool,
                    user_id=user_id,
                    conversation_id=conversation_id,
                    after_seq=after,
                    batch=batch,
                )
                await run.done(
                    "anonymize events", {"conversation_events": scrubbed}, anonymized=True
                )
                after += batch
            while await run.done(
                "anonymize messages",
                {
                    "messages": await erasure.update_erasure_messages(
                        pool, user_id=user_id, conversation_id=conversation_id, batch=batch
                    )
                },
                anonymized=True,
            ):
                pass
            await run.done(
                "membership",
                {
                    "conversation_members": await erasure.delete_erasure_membership(
                        pool, user_id=user_id, conversation_id=conversation_id
                    )
                },
            )


async def _delete_own_conversations(pool: Pool, run: _Run, *, user_id: UUID, batch: int) -> None:
    """Each conversation the user owns: its messages (with their versions, feedback and file
    references) batch by batch, its event log batch by batch, then the rest and the row."""
    done: set[UUID] = set()
    while found := await erasure.list_erasure_owned_conversations(
        pool, user_id=user_id, limit=CONVERSATIONS_AT_ONCE
    ):
        _never_again(found, done)
        for conversation_id in found:
            while await run.done(
                "conversation messages",
                await erasure.delete_erasure_conversation_messages(
                    pool, user_id=user_id, conversation_id=conversation_id, batch=batch
                ),
            ):
                pass
            while await run.done(
                "conversation events",
                {
                    "conversation_events": await erasure.delete_erasure_conversation_events(
                        pool, user_id=user_id, conversation_id=conversation_id, batch=batch
                    )
                },
            ):
                pass
            await run.done(
                "conversation",
                await erasure.delete_erasure_conversation(
                    pool, user_id=user_id, conversation_id=conversation_id
                ),
            )
