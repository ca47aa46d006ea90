"""Attachments: files kept in PostgreSQL, referenced from messages' ``file`` parts (README
"Attachments")."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from dal.records.base import CursorPage, Row


class Attachment(Row):
    """A file as its uploader sent it: ``media_type`` is what it is served as (sniffed from its
    bytes), ``declared_type`` what the client said it was (``type_mismatch`` when they differ),
    ``sha256`` the hex digest of its bytes (its ETag). ``url`` is where it is served, the value
    of a message ``file`` part's ``url`` that references it: ``ATTACHMENT_PATH`` and its id,
    made by the queries (a field, not a computed one: a record renders as its row, by orjson)."""

    id: UUID
    user_id: UUID
    name: str
    media_type: str
    declared_type: str | None
    type_mismatch: bool
    size: int
    sha256: str
    created_at: datetime
    url: str


class Uploaded(Row):
    """The result of an upload: ``created`` is False when the uploader already had a file with
    these bytes, which is returned instead (nothing new is stored)."""

    attachment: Attachment
    created: bool


class MessageAttachment(Attachment):
    """A file a message of a conversation references: the message's ``message_id`` and ``seq``."""

    message_id: UUID
    seq: int


class MessageAttachmentPage(CursorPage[MessageAttachment]):
    """The files a conversation's messages reference, by message ``seq`` then file id; pass
    ``next_cursor`` back for the next page (None on the last one)."""


class Thumbnail(Row):
    """A file (``source_type``, ``source_size``) and its thumbnail (``media_type`` image/webp or
    image/jpeg, ``data``, ``width`` x ``height``), or why none can be made (``refused``); all
    None while none was tried."""

    source_type: str
    source_size: int
    media_type: str | None
    data: bytes | None
    width: int | None
    height: int | None
    refused: str | None


class Collected(Row):
    """What a collection of unreferenced files removed (or, in a dry run, would remove)."""

    attachments: int
    bytes: int


class MessageAttachments(Row):
    """The files a message references, by id."""

    items: list[MessageAttachment]
