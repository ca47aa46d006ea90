"""Branches of a conversation (README "Branches"): the siblings of a message, a switch of the
active branch, and what a switch is asked to do."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel

from dal.records.base import INPUT, Row
from dal.records.messages import Message


class Siblings(Row):
    """The siblings of a message (the children of its parent, itself included), oldest first:
    the versions of an edited question or a regenerated answer. ``active_id`` is the one on
    the active branch, if it is on this page; ``has_more`` when more siblings follow."""

    items: list[Message]
    active_id: UUID | None
    has_more: bool


class Activation(BaseModel):
    """How to activate a message. ``descend`` (the default) makes the branch go on below it
    to the newest message written below it on any branch: the sibling's branch as it was
    left. ``descend: false`` ends the branch at the message itself (the next append follows
    it)."""

    model_config = INPUT
    descend: bool = True


class ActiveBranch(Row):
    """The conversation's active branch after a switch: its leaf (None: no message is active,
    the next append starts a new first message), the last message it shares with the branch
    before (``fork_seq``, 0 when none), and how many messages joined and left it."""

    conversation_id: UUID
    leaf_seq: int | None
    fork_seq: int
    activated: int
    deactivated: int
