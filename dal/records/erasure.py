"""Erasing a user (README "Erasing a user"): the report of what went."""

from __future__ import annotations

from uuid import UUID

from dal.records.base import Row


class ErasureReport(Row):
    """What an erasure removed and anonymized, as counts per table.

    ``deleted``: rows deleted, per table (a table the erasure found nothing in is absent).
    ``anonymized``: rows kept for the others' sake with the user's traces removed (their
    messages in others' conversations as tombstones, membership-change messages and event
    payloads naming them, the columns recording that they deleted, edited or added
    something). ``batches``: the statements run. An erasure cut short and run again reports
    only what the second run did.
    """

    user_id: UUID
    username: str
    deleted: dict[str, int]
    anonymized: dict[str, int]
    batches: int
