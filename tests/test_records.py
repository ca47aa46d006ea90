"""Records built from rows without validation equal records built with it."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from dal.database import fetch_all, fetch_one
from dal.gateways import conversations, messages, users
from dal.queries import Q
from dal.records.base import JSON_DEPTH_CONTEXT, MAX_JSON_DEPTH, json_problem
from dal.records.conversations import Conversation, ConversationDraft
from dal.records.messages import Message, MessageDraft, MessagePatch
from dal.records.threads import ThreadStateDraft
from dal.records.users import Token, User, UserDraft
from tests.dal.test_messages import AI_SDK_PARTS


def assert_same(record_type: type[BaseModel], row: Any) -> None:
    fast = record_type.from_row(row)  # type: ignore[attr-defined]
    checked = record_type.model_validate(dict(row))
    assert fast == checked
    assert fast.model_dump_json() == checked.model_dump_json()
    assert fast.model_dump() == checked.model_dump()
    assert fast.model_fields_set == checked.model_fields_set
    assert repr(fast) == repr(checked)


async def test_from_row_equals_validated_record_for_every_row_type(pool: Any) -> None:
    created = await users.create_user(
        pool, draft=UserDraft(username="rec", display_name="R", metadata={"a": [1, {"b": None}]})
    )
    uid = created.user.id
    conv = await conversations.insert_conversation(
        pool, user_id=uid, draft=ConversationDraft(title="t", tags=["x"], metadata={"k": 1.5})
    )
    await messages.insert_message(
        pool,
        user_id=uid,
        conversation_id=conv.id,
        draft=MessageDraft(role="assistant", parts=AI_SDK_PARTS, metadata={"m": "✓"}),
    )
    await messages.insert_message(
        pool,
        user_id=uid,
        conversation_id=conv.id,
        draft=MessageDraft(role="user", parts=[], status="streaming"),
    )
    assert_same(User, await fetch_one(pool, Q["get_user"], uid))
    assert_same(Token, await fetch_one(pool, Q["revoke_token"], uid, created.token.token.id))
    assert_same(Conversation, await fetch_one(pool, Q["get_conversation"], uid, conv.id))
    rows = await fetch_all(pool, Q["list_messages_latest"], uid, conv.id, 10, 2**40)
    assert len(rows) == 2
    for row in rows:
        assert_same(Message, row)


def test_from_row_records_are_frozen() -> None:
    from datetime import UTC, datetime
    from uuid import uuid4

    now = datetime.now(UTC)
    token = Token.from_row(
        {"id": uuid4(), "user_id": uuid4(), "name": None, "created_at": now, "revoked_at": None}
    )
    with pytest.raises(ValidationError, match="frozen"):
        token.name = "changed"  # type: ignore[misc]


# --- JSON values: the number rule and the nesting limit, from Python too -------------------


def _deep(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


def test_json_problem_counts_containers_and_names_where() -> None:
    assert json_problem(_deep(5), 5) is None
    assert json_problem(_deep(6), 5) == (
        "json_too_deep",
        "nested deeper than 5 levels at k.0.k.0.k",
    )
    assert json_problem({}, 1) is None and json_problem([[]], 1) is not None
    for scalar in (None, True, False, "x", 0, -0.0, 5e-324, 1.7976931348623157e308):
        assert json_problem(scalar, 1) is None
        assert json_problem({"a": [scalar]}, 2) is None


@pytest.mark.parametrize(
    "number",
    [float("inf"), float("-inf"), float("nan"), 2**63, -(2**63) - 1, 2**64 - 1, 10**400],
)
def test_json_problem_refuses_numbers_that_do_not_come_back(number: float | int) -> None:
    problem = json_problem({"a": [1, {"b": number}]}, 64)
    assert problem is not None and problem[0] == "json_number"
    assert problem[1].startswith(("number out of range at a.1.b", "integer out of range at a.1.b"))
    assert json_problem(number, 64) is not None


def test_json_problem_looks_into_subclasses_and_keeps_bool() -> None:
    import enum
    from collections import OrderedDict

    class Big(enum.IntEnum):
        HUGE = 2**70

    assert json_problem({"a": Big.HUGE}, 64) is not None
    assert json_problem(OrderedDict(a=OrderedDict(b=float("inf"))), 64) is not None
    assert json_problem(OrderedDict(a=[[[]]]), 3) is not None
    assert json_problem({"t": True, "f": False}, 64) is None  # bools are not integers here


def test_json_problem_location_is_cut_short() -> None:
    key = "k" * 10_000
    problem = json_problem({key: {key: float("nan")}}, 64)
    assert problem is not None and len(problem[1]) < 200


def test_json_problem_of_very_deep_value_does_not_recurse() -> None:
    deep: Any = 1
    for _ in range(100_000):
        deep = [deep]
    problem = json_problem(deep, 64)
    assert problem is not None
    assert problem[1].startswith("nested deeper than 64 levels at 0.0.0.") and problem[1].endswith(
        "…"
    )


# pydantic itself refuses infinity from Python (allow_inf_nan=False), but not from JSON.
_REFUSED = "out of range|nested deeper|finite number"


def test_drafts_from_python_refuse_what_json_cannot_bring_back() -> None:
    bad: list[Any] = [float("inf"), 2**63, _deep(MAX_JSON_DEPTH)]
    for value in bad:
        with pytest.raises(ValidationError, match=_REFUSED):
            ConversationDraft(metadata={"x": value})
        with pytest.raises(ValidationError, match=_REFUSED):
            UserDraft(username="u", metadata={"x": value})
        with pytest.raises(ValidationError, match=_REFUSED):
            MessageDraft(role="user", parts=[{"type": "data-x", "data": value}])
        with pytest.raises(ValidationError, match=_REFUSED):
            MessagePatch(append_parts=[{"type": "data-x", "data": value}])
        with pytest.raises(ValidationError, match=_REFUSED):
            ThreadStateDraft(values={"x": value})
        with pytest.raises(ValidationError, match=_REFUSED):
            ThreadStateDraft(values={}, metadata={"x": value})
    ok = _deep(MAX_JSON_DEPTH - 1)  # the metadata object itself is a level
    assert ConversationDraft(metadata={"x": ok}).metadata == {"x": ok}
    assert ThreadStateDraft(values={"x": ok}).values == {"x": ok}


def test_drafts_from_json_refuse_overflowing_numbers_and_take_the_depth_from_context() -> None:
    overflow = b"1" + b"0" * 250 + b"e99"
    with pytest.raises(ValidationError, match="number out of range at x"):
        ConversationDraft.model_validate_json(b'{"metadata": {"x": ' + overflow + b"}}")
    with pytest.raises(ValidationError, match="integer out of range at x.0"):
        ConversationDraft.model_validate_json(b'{"metadata": {"x": [9223372036854775808]}}')
    body = b'{"metadata": {"x": [[1]]}}'
    assert ConversationDraft.model_validate_json(body).metadata == {"x": [[1]]}
    assert ConversationDraft.model_validate_json(body, context={JSON_DEPTH_CONTEXT: 3})
    with pytest.raises(ValidationError, match="nested deeper than 2 levels at x"):
        ConversationDraft.model_validate_json(body, context={JSON_DEPTH_CONTEXT: 2})


def test_app_depth_setting_defaults_to_the_records_limit() -> None:
    from dal.settings import Settings

    assert Settings.model_fields["app_max_json_depth"].default == MAX_JSON_DEPTH


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _numbers_fine(value: Any) -> bool:
    if isinstance(value, dict):
        return all(map(_numbers_fine, value.values()))
    if isinstance(value, list):
        return all(map(_numbers_fine, value))
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value < 2**63
    return True


_json_trees = st.recursive(
    st.none() | st.booleans() | st.text(max_size=3) | st.floats() | st.integers(-(2**65), 2**65),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=2), children, max_size=3)
    ),
    max_leaves=15,
)


@settings(max_examples=300, deadline=None, database=None)
@given(value=_json_trees, max_depth=st.integers(1, 6))
def test_json_problem_agrees_with_a_recursive_reading_of_the_rule(
    value: Any, max_depth: int
) -> None:
    problem = json_problem(value, max_depth)
    too_deep = _depth(value) > max_depth
    if not too_deep and _numbers_fine(value):
        assert problem is None
    else:
        assert problem is not None
        assert problem[0] == "json_too_deep" or not _numbers_fine(value)
        assert problem[0] == "json_number" or too_deep
