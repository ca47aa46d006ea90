"""Read state of conversation members: positions, unread counts, receipts, delivery status.

A member's read position (``last_read_seq``) says every message up to that seq is read; the
delivery position (``delivered_seq``) that their client received every message up to it. Both
only move forwards, and delivery is never behind reading. Unread messages are those after the
read position on the active branch, not retracted and not the member's own; counts stop at a
cap (``capped`` says a count reached it: "at least that many").
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, Field

from dal.records.base import INPUT, Row, whole_number

DeliveryStatus = Literal["sent", "delivered", "read"]

SEQ_MAX = 2**63 - 1


Seq = Annotated[int, Field(ge=0, le=SEQ_MAX), BeforeValidator(whole_number)]


class ReadMark(BaseModel):
    """Mark read (or delivered) up to ``seq``; without it (or beyond it), up to the
    conversation's last seq."""

    model_config = INPUT
    seq: Seq | None = None


class ReadState(Row):
    """The caller's read state in one conversation."""

    conversation_id: UUID
    last_read_seq: int
    delivered_seq: int
    last_seq: int
    unread: int
    capped: bool


class UnreadCount(Row):
    """One conversation's unread count for the caller (``capped``: at least ``unread``)."""

    conversation_id: UUID
    last_read_seq: int
    unread: int
    capped: bool


class UnreadCounts(Row):
    """Unread counts of the conversations asked for that the caller is a member of."""

    items: list[UnreadCount]


class UnreadSummary(Row):
    """The caller's unread messages over all their conversations: ``conversations`` that have
    some (exact), ``total`` (each conversation counting at most its cap, the whole at most the
    total cap; ``capped``: at least that many), and one page of those conversations, by
    conversation id."""

    total: int
    conversations: int
    capped: bool
    items: list[UnreadCount]
    next_cursor: str | None


def delivery_status(recipients: int, read_count: int, delivered_count: int) -> DeliveryStatus:
    """'read' when every recipient has read the message, 'delivered' when every one has it
    delivered, else 'sent' (also with no recipient: the message has reached no one)."""
    if recipients == 0:
        return "sent"
    if read_count == recipients:
        return "read"
    if delivered_count == recipients:
        return "delivered"
    return "sent"


class Receipt(Row):
    """One recipient of a message: whether they have read it and have it delivered."""

    user_id: UUID
    role: str
    read: bool
    delivered: bool


class MessageReceipts(Row):
    """Who has read a message: its recipients are the members other than its sender who had
    joined when it was written; the counts are over all of them, ``items`` one page."""

    message_id: UUID
    seq: int
    sender_id: UUID | None
    status: DeliveryStatus
    recipients: int
    read_count: int
    delivered_count: int
    items: list[Receipt]
    next_cursor: str | None


class MessageDelivery(Row):
    """The delivery status of one message (see MessageReceipts for its recipients)."""

    id: UUID
    seq: int
    sender_id: UUID | None
    status: DeliveryStatus
    recipients: int
    read_count: int
    delivered_count: int


class MessageDeliveryPage(Row):
    """Delivery statuses of messages in seq order; ``has_more`` when more follow."""

    items: list[MessageDelivery]
    has_more: bool
