"""The jsonb codec refuses what it cannot store with InvalidInput, whatever the value: the
Python path reaches it with values no record validated (a history filter, LangGraph's
metadata), so a deeply nested or unencodable one must not escape as RecursionError."""

from __future__ import annotations

from typing import Any

import pytest

from dal.database import translating
from dal.errors import InvalidInput
from dal.records.threads import ThreadStateDraft
from dal.records.users import User
from dal.usecases import threads as thread_views


def deep(depth: int) -> Any:
    """A list nested ``depth`` levels deep (built without recursion)."""
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (deep(300), "Recursion limit reached"),
        (deep(1_000), "Recursion limit reached"),  # repr() of it used to raise RecursionError
        ({"k": deep(50_000)}, "Recursion limit reached"),
        ({"n": 2**64}, "Integer exceeds 64-bit range"),
        ({"s": "\ud800"}, "surrogates not allowed"),
    ],
    ids=["deep-300", "deep-1000", "deep-50000", "int-2**64", "lone-surrogate"],
)
async def test_jsonb_codec_refuses_unencodable_value_with_invalid_input(
    pool: Any, value: Any, reason: str
) -> None:
    with pytest.raises(InvalidInput) as caught, translating():
        await pool.fetchval("SELECT $1::jsonb", value)
    assert reason in caught.value.message
    assert len(caught.value.message) < 200  # the value itself is never quoted
    assert await pool.fetchval("SELECT 1") == 1  # the connection is fine


async def test_history_filter_nested_deep_from_python_is_invalid_input(
    pool: Any, alice: User
) -> None:
    draft = ThreadStateDraft(values={"n": 1}, metadata={"k": [1]})
    await thread_views.put_thread_state(pool, user_id=alice.id, thread_id="t", draft=draft)
    for depth in (300, 1_000, 1_023):
        with pytest.raises(InvalidInput):
            await thread_views.list_thread_history(
                pool, user_id=alice.id, thread_id="t", metadata_filter={"k": deep(depth)}
            )
