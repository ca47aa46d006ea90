"""Attachments (README "Attachments"): the statements of an upload (begin, one per chunk,
finish or abandon), reading a file's bytes in slices, its thumbnail, the files messages
reference, and the collection of files no message references. Streaming, hashing and
sniffing are ``dal.usecases.attachments``'; here each function is one statement.

Who may read a file is decided by every statement that reads one (queries/attachments.sql):
its uploader, or a member who may read a conversation where a message references it; anyone
else gets NotFound.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from dal.cursors import check_limit, decode_seq_keyset, encode_seq_keyset
from dal.database import Executor, Record, fetch_all, fetch_one, fetch_value
from dal.errors import Conflict, NotFound, NotPermitted, TooLarge
from dal.ids import new_id
from dal.queries import Q
from dal.records.attachments import (
    Attachment,
    Collected,
    MessageAttachment,
    MessageAttachmentPage,
    Thumbnail,
    Uploaded,
)

# Bytes of a stored chunk (the last of a file is shorter); a file of n bytes has
# ceil(n / CHUNK_SIZE) chunks, numbered from 0. The migration's CHECK holds chunks to it.
CHUNK_SIZE = 1024 * 1024
# Seconds after which an upload never finished is abandoned by a collection, whatever
# APP_ATTACHMENT_GRACE_SECONDS says (a grace of 0 must not cut a running upload short).
STALE_UPLOAD_SECONDS = 24 * 3600

_ATTACHMENT_COLUMNS = tuple(Attachment.model_fields)
_LISTED_COLUMNS = tuple(MessageAttachment.model_fields)
# The keyset before the first reference: seqs start at 1.
_START = (0, UUID(int=0))


def _attachment(row: Record) -> Attachment:
    return Attachment.from_values({name: row[name] for name in _ATTACHMENT_COLUMNS})


def _listed(row: Record) -> MessageAttachment:
    return MessageAttachment.from_values({name: row[name] for name in _LISTED_COLUMNS})


async def insert_attachment(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    name: str,
    declared_type: str | None,
    attachment_id: UUID | None = None,
) -> UUID:
    """Begin an upload into a conversation where the caller may append: the file's row, with
    no bytes yet (nobody can read or reference it before ``update_attachment_ready``).
    NotFound if the caller is not a member; NotPermitted if their role may not append."""
    new = attachment_id or new_id()
    row = await fetch_one(
        db, Q["insert_attachment"], user_id, conversation_id, new, name, declared_type
    )
    if row is None:
        raise NotFound("conversation", conversation_id)
    if not row["allowed"]:
        raise NotPermitted("your role in this conversation may not append (nor attach files)")
    return new


async def insert_attachment_chunk(
    db: Executor, *, user_id: UUID, attachment_id: UUID, n: int, data: bytes, quota: int = 0
) -> None:
    """Store chunk ``n`` of the caller's upload and count it into the file's size and the
    caller's usage, in one statement. TooLarge (``quota_exceeded``) when the caller's files
    would pass ``quota`` bytes (0: no quota), nothing stored; NotFound when the upload is
    gone (finished, abandoned, or collected as stale)."""
    row = await fetch_one(db, Q["insert_attachment_chunk"], user_id, attachment_id, n, data, quota)
    assert row is not None
    if not row["uploading"]:
        raise NotFound("upload", attachment_id)
    if not row["stored"]:
        raise TooLarge(
            f"storage quota exceeded: your files may take {quota} bytes in all "
            "(APP_ATTACHMENT_QUOTA_BYTES)",
            code="quota_exceeded",
        )


async def update_attachment_ready(
    db: Executor,
    *,
    user_id: UUID,
    attachment_id: UUID,
    sha256: bytes,
    media_type: str,
    type_mismatch: bool,
) -> Uploaded:
    """End the caller's upload: the file is ready, served as ``media_type``. When the caller
    already has a file with these bytes, that one comes back (``created`` False) and this
    upload is dropped. NotFound when the upload is gone."""
    args = (user_id, attachment_id, sha256, media_type, type_mismatch)
    try:
        row = await fetch_one(db, Q["update_attachment_ready"], *args)
    except Conflict as exc:
        # The same bytes finished by a concurrent upload of the caller's, committed while this
        # statement waited: a new statement finds it (on a pool or an idle connection; in a
        # caller's transaction the error has aborted it, and goes to the caller).
        in_transaction = isinstance(db, asyncpg.Connection) and db.is_in_transaction()
        if exc.constraint != "attachments_user_sha256_key" or in_transaction:
            raise
        row = await fetch_one(db, Q["update_attachment_ready"], *args)
    if row is None:
        raise NotFound("upload", attachment_id)
    return Uploaded.from_values({"attachment": _attachment(row), "created": row["created"]})


async def delete_attachment_upload(db: Executor, *, user_id: UUID, attachment_id: UUID) -> bool:
    """Abandon the caller's unfinished upload (row, chunks, usage); False if there is none.
    A finished file is never touched."""
    released = await fetch_value(db, Q["delete_attachment_upload"], user_id, attachment_id)
    return released is not None


async def get_attachment(db: Executor, *, user_id: UUID, attachment_id: UUID) -> Attachment:
    """A file the caller may read; NotFound otherwise (missing, unfinished, or not theirs
    to read: its uploader, or a member who may read a conversation referencing it)."""
    row = await fetch_one(db, Q["get_attachment"], user_id, attachment_id)
    if row is None:
        raise NotFound("attachment", attachment_id)
    return _attachment(row)


async def list_attachment_chunks(
    db: Executor, *, user_id: UUID, attachment_id: UUID, first: int, last: int
) -> list[bytes]:
    """Bytes ``first`` to ``last`` (inclusive, 0-based) of a file the caller may read, as the
    slices of the chunks holding them, in order (read few at a time: each slice is up to
    CHUNK_SIZE bytes in memory). Empty when the caller may no longer read the file, or the
    bytes are not there (a deleted file)."""
    if first < 0 or last < first:
        return []
    rows = await fetch_all(
        db, Q["list_attachment_chunks"], user_id, attachment_id, first, last, CHUNK_SIZE
    )
    return [row["data"] for row in rows]


async def get_attachment_thumbnail(
    db: Executor, *, user_id: UUID, attachment_id: UUID
) -> Thumbnail:
    """A file the caller may read with its thumbnail as stored: made (``data``), refused
    (``refused``), or not tried yet (both None). NotFound as ``get_attachment``."""
    row = await fetch_one(db, Q["get_attachment_thumbnail"], user_id, attachment_id)
    if row is None:
        raise NotFound("attachment", attachment_id)
    return Thumbnail.from_row(row)


async def insert_attachment_thumbnail(
    db: Executor, *, attachment_id: UUID, made: Thumbnail
) -> bool:
    """Keep a file's thumbnail, or why it was refused (``made.refused``), unless another
    request kept one first. The caller has read the file (``get_attachment_thumbnail``); this
    only stores what was made of it. False when the file was deleted meanwhile."""
    kept: bool = await fetch_value(
        db,
        Q["insert_attachment_thumbnail"],
        attachment_id,
        made.media_type,
        made.data,
        made.width,
        made.height,
        made.refused,
    )
    return kept


async def list_attachments_of_conversation(
    db: Executor,
    *,
    user_id: UUID,
    conversation_id: UUID,
    limit: int = 50,
    cursor: str | None = None,
) -> MessageAttachmentPage:
    """A page of the files the conversation's messages reference (one item per message and
    file), by message ``seq`` then file id. NotFound if the caller is not a member;
    NotPermitted if their role may not read."""
    check_limit(limit)
    after = _START if not cursor else decode_seq_keyset(cursor)
    rows = await fetch_all(
        db, Q["list_attachments_of_conversation"], user_id, conversation_id, *after, limit + 1
    )
    if not rows:
        raise NotFound("conversation", conversation_id)
    if not rows[0]["allowed"]:
        raise NotPermitted("your role in this conversation may not read")
    items = [_listed(row) for row in rows[:limit] if row["id"] is not None]
    more = len(rows) > limit
    return MessageAttachmentPage.from_values(
        {
            "items": items,
            "next_cursor": encode_seq_keyset(items[-1].seq, items[-1].id) if more else None,
        }
    )


async def list_attachments_of_message(
    db: Executor, *, user_id: UUID, conversation_id: UUID, message_id: UUID
) -> list[MessageAttachment]:
    """The files a message references, by id. NotFound if the caller is not a member or the
    message is missing; NotPermitted if their role may not read."""
    rows = await fetch_all(
        db, Q["list_attachments_of_message"], user_id, conversation_id, message_id
    )
    if not rows:
        raise NotFound("conversation", conversation_id)
    if not rows[0]["allowed"]:
        raise NotPermitted("your role in this conversation may not read")
    if rows[0]["message_id"] is None:
        raise NotFound("message", message_id)
    return [_listed(row) for row in rows if row["id"] is not None]


async def delete_orphaned_attachments(
    db: Executor, *, grace: float, batch: int = 100, stale: float = STALE_UPLOAD_SECONDS
) -> Collected:
    """Collect one batch (up to ``batch`` files): files no message has referenced for
    ``grace`` seconds, and uploads unfinished for ``max(grace, stale)`` seconds; skipping
    any a concurrent statement holds (a send referencing it). Call again until it collects
    nothing."""
    row = await fetch_one(db, Q["delete_orphaned_attachments"], grace, stale, batch)
    assert row is not None
    return Collected.from_row(row)


async def count_orphaned_attachments(
    db: Executor, *, grace: float, stale: float = STALE_UPLOAD_SECONDS
) -> Collected:
    """What collecting would remove now (a dry run): files and bytes."""
    row = await fetch_one(db, Q["count_orphaned_attachments"], grace, stale)
    assert row is not None
    return Collected.from_row(row)
