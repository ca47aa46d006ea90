"""Members of shared conversations and their roles (README "Members and roles")."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel

from dal.records.base import INPUT, CursorPage, Row

# The roles of conversation_roles, highest rank first (owner 4 ... member 1).
ConversationRole = Literal["owner", "admin", "moderator", "member"]


class Member(Row):
    """A member of a conversation: their role, since when, their read position, who added them
    (NULL for the creator, and for members from before shared conversations)."""

    conversation_id: UUID
    user_id: UUID
    role: ConversationRole
    joined_at: datetime
    last_read_seq: int
    added_by: UUID | None


class MemberDraft(BaseModel):
    """A user to add, and their role (below the adder's own)."""

    model_config = INPUT
    user_id: UUID
    role: ConversationRole = "member"


class MemberPatch(BaseModel):
    """A member's new role: below the changer's own; ``owner`` from the owner hands ownership
    over (the old owner becomes an admin)."""

    model_config = INPUT
    role: ConversationRole


class AddedMember(Row):
    """The result of an add: ``created`` is False when the user was already a member with that
    role (nothing changed)."""

    member: Member
    created: bool


class MemberPage(CursorPage[Member]):
    """A page of a conversation's members, in the order they joined."""
