"""What an import answers. (The documents an import reads are built from the message and
conversation records, so they live with the use case: ``dal.usecases.transfer``.)"""

from __future__ import annotations

from uuid import UUID

from dal.records.base import Row


class ImportedConversation(Row):
    """A conversation an import created: its id (new, or kept) and how many messages."""

    id: UUID
    title: str
    message_count: int


class ImportResult(Row):
    """What an import wrote, in one transaction: the conversations in the order of the input."""

    conversation_count: int
    message_count: int
    conversations: list[ImportedConversation]
