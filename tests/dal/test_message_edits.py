"""Edits within a window, earlier versions, retraction and deletion as tombstones.

The window's clock is the stored ``created_at``: a test backdates it with SQL, never sleeps.
Inside one transaction ``now()`` does not move, so backdating and editing in the same
transaction puts the edit exactly at the age the test chose (the boundary itself).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from uuid import UUID

import pytest

from dal.database import transaction
from dal.errors import Conflict, InvalidInput, NotFound, NotPermitted, TooLarge
from dal.gateways import conversations, messages
from dal.gateways.messages import EditWindowClosed, MessageRetracted
from dal.ids import new_id
from dal.records.conversations import Conversation, ConversationDraft
from dal.records.messages import Message, MessageDraft, MessagePatch
from dal.records.users import User
from dal.settings import Settings
from tests.dal.conftest import make_conversation, make_user

if TYPE_CHECKING:
    from tests.test_session_state import SessionRun


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


async def say(db: Any, user: User, conv: Conversation, words: str = "hi", **kw: Any) -> Message:
    draft = MessageDraft(role=kw.pop("role", "user"), parts=[text(words)] if words else [], **kw)
    appended = await messages.insert_message(
        db, user_id=user.id, conversation_id=conv.id, draft=draft
    )
    return appended.message


async def add_member(db: Any, conv: Conversation, user: User, role: str) -> None:
    # Ad-hoc: the members gateway is another helper's (branch i10-members).
    await db.execute(
        "INSERT INTO conversation_members (conversation_id, user_id, role) VALUES ($1, $2, $3)",
        conv.id,
        user.id,
        role,
    )


async def remove_member(db: Any, conv: Conversation, user: User) -> None:
    await db.execute(
        "DELETE FROM conversation_members WHERE conversation_id = $1 AND user_id = $2",
        conv.id,
        user.id,
    )


async def backdate(db: Any, message: Message, seconds: float) -> None:
    """The test's clock: the message was written ``seconds`` before now()."""
    await db.execute(
        "UPDATE messages SET created_at = now() - make_interval(secs => $3)"
        " WHERE conversation_id = $1 AND id = $2",
        message.conversation_id,
        message.id,
        seconds,
    )


def edit(db: Any, user: User, message: Message, words: str, metadata: Any = None, **kw: Any) -> Any:
    """Replace the message's parts (and metadata, if given); ``kw`` goes to the gateway."""
    fields = (
        {"parts": [text(words)]}
        if metadata is None
        else {"parts": [text(words)], "metadata": metadata}
    )
    return messages.update_message(
        db,
        user_id=user.id,
        conversation_id=message.conversation_id,
        message_id=message.id,
        patch=MessagePatch(**fields),
        **kw,
    )


def retract(db: Any, user: User, message: Message, **kw: Any) -> Any:
    return messages.delete_own_message(
        db, user_id=user.id, conversation_id=message.conversation_id, message_id=message.id, **kw
    )


def delete(db: Any, user: User, message: Message) -> Any:
    return messages.delete_message(
        db, user_id=user.id, conversation_id=message.conversation_id, message_id=message.id
    )


def versions(db: Any, user: User, message: Message, **kw: Any) -> Any:
    return messages.list_message_versions(
        db, user_id=user.id, conversation_id=message.conversation_id, message_id=message.id, **kw
    )


def get(db: Any, user: User, message: Message) -> Any:
    return messages.get_message(
        db, user_id=user.id, conversation_id=message.conversation_id, message_id=message.id
    )


# --- edits ------------------------------------------------------------------------------


async def test_edits_keep_every_earlier_version_numbered_1_to_n(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    first = await say(pool, alice, conv, "v1", metadata={"n": 1})
    assert first.edited_at is None

    second = await edit(pool, alice, first, "v2")
    third = await edit(pool, alice, first, "v3", metadata={"n": 3})

    assert (second.content, second.seq, second.metadata) == ("v2", first.seq, {"n": 1})
    assert second.edited_at is not None and third.edited_at is not None
    assert first.created_at <= second.edited_at <= third.edited_at
    assert (third.content, third.metadata, third.created_at) == ("v3", {"n": 3}, first.created_at)
    page = await versions(pool, alice, first)
    assert not page.has_more
    assert [(v.version, v.content, v.metadata) for v in page.items] == [
        (1, "v1", {"n": 1}),
        (2, "v2", {"n": 1}),
    ]
    # When and by whom each version was written: the message's creation, then each edit.
    assert [v.written_at for v in page.items] == [first.created_at, second.edited_at]
    assert {v.written_by for v in page.items} == {alice.id}
    assert {(v.message_id, v.seq) for v in page.items} == {(first.id, first.seq)}
    assert page.items[0].parts == [text("v1")]


async def test_edit_window_closes_after_the_setting_and_changes_nothing(
    pool: Any, alice: User
) -> None:
    conv = await make_conversation(pool, alice)
    message = await say(pool, alice, conv, "v1")
    await backdate(pool, message, 301)

    with pytest.raises(EditWindowClosed, match="APP_EDIT_WINDOW_SECONDS") as caught:
        await edit(pool, alice, message, "too late")

    assert caught.value.code == "edit_window_closed" and isinstance(caught.value, Conflict)
    kept = await get(pool, alice, message)
    assert (kept.content, kept.edited_at) == ("v1", None)
    assert (await versions(pool, alice, message)).items == []
    # The same age within a longer window is fine.
    assert (await edit(pool, alice, message, "ok", edit_window=302)).content == "ok"


async def test_edit_window_boundary_is_inclusive_to_the_microsecond(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    message = await say(pool, alice, conv, "v1")
    async with transaction(pool) as tx:  # one now() for the backdate and the edit
        await backdate(tx, message, 300)
        assert (await edit(tx, alice, message, "at 300 s")).content == "at 300 s"
    async with transaction(pool) as tx:
        await backdate(tx, message, 300.000001)
        with pytest.raises(EditWindowClosed):
            await edit(tx, alice, message, "a microsecond late")
        with pytest.raises(EditWindowClosed):
            await retract(tx, alice, message)
    async with transaction(pool) as tx:
        await backdate(tx, message, 300)
        assert (await retract(tx, alice, message)).retracted_at is not None


async def test_a_window_of_zero_allows_no_edit_nor_retraction(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    async with transaction(pool) as tx:  # age 0: written in this very transaction
        message = await say(tx, alice, conv, "v1")
        with pytest.raises(EditWindowClosed, match="within 0 seconds"):
            await edit(tx, alice, message, "v2", edit_window=0)
        with pytest.raises(EditWindowClosed):
            await retract(tx, alice, message, edit_window=0)
        changed = await messages.update_message(
            tx,
            user_id=alice.id,
            conversation_id=conv.id,
            message_id=message.id,
            patch=MessagePatch(metadata={"tag": 1}),
            edit_window=0,
        )
    assert changed.metadata == {"tag": 1} and changed.edited_at is None


async def test_streaming_and_finalizing_are_not_edits_whatever_the_age(
    pool: Any, alice: User
) -> None:
    conv = await make_conversation(pool, alice)
    started = await say(pool, alice, conv, "", role="assistant", status="streaming")
    await backdate(pool, started, 3600)
    ids = {"user_id": alice.id, "conversation_id": conv.id, "message_id": started.id}

    await messages.update_message(pool, **ids, patch=MessagePatch(append_parts=[text("Hel")]))
    await messages.update_message(pool, **ids, patch=MessagePatch(parts=[text("Hello")]))
    done = await messages.update_message(
        pool, **ids, patch=MessagePatch(append_parts=[text("!")], status="complete")
    )

    assert (done.content, done.status, done.edited_at) == ("Hello\n!", "complete", None)
    assert (await versions(pool, alice, started)).items == []
    with pytest.raises(EditWindowClosed):  # once complete, replacing its parts is an edit
        await messages.update_message(pool, **ids, patch=MessagePatch(parts=[text("x")]))
    with pytest.raises(Conflict, match="complete"):
        await messages.update_message(pool, **ids, patch=MessagePatch(append_parts=[text("x")]))


async def test_metadata_changes_are_not_edits_and_have_no_window(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    message = await say(pool, alice, conv, "v1", metadata={"a": 1})
    await backdate(pool, message, 10 * 3600)

    changed = await messages.update_message(
        pool,
        user_id=alice.id,
        conversation_id=conv.id,
        message_id=message.id,
        patch=MessagePatch(metadata={"tokens": 12}, status="complete"),
    )

    assert (changed.metadata, changed.content, changed.edited_at) == ({"tokens": 12}, "v1", None)
    assert (await versions(pool, alice, message)).items == []


async def test_edit_over_the_size_limits_is_too_large_and_keeps_no_version(
    pool: Any, alice: User
) -> None:
    conv = await make_conversation(pool, alice)
    message = await say(pool, alice, conv, "v1")
    with pytest.raises(TooLarge):
        await edit(pool, alice, message, "x" * 100, max_bytes=50)
    assert (await get(pool, alice, message)).content == "v1"
    assert (await versions(pool, alice, message)).items == []


async def test_concurrent_edits_number_their_versions_without_gaps(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    message = await say(pool, alice, conv, "v0")

    await asyncio.gather(*(edit(pool, alice, message, f"e{n}") for n in range(20)))

    page = await versions(pool, alice, message, limit=50)
    assert [v.version for v in page.items] == list(range(1, 21))
    assert page.items[0].content == "v0"
    # Each version holds what the edit before it wrote: no edit was lost or repeated.
    newest = await get(pool, alice, message)
    written = [v.content for v in page.items[1:]] + [newest.content]
    assert sorted(written) == sorted(f"e{n}" for n in range(20))
    stored = await pool.fetchval(
        "SELECT version FROM messages WHERE conversation_id = $1 AND id = $2", conv.id, message.id
    )
    assert stored == 21


async def test_versions_page_by_count_and_by_bytes(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    message = await say(pool, alice, conv, "v1")
    for n in range(2, 8):
        await edit(pool, alice, message, f"v{n}" + "x" * 100)

    first = await versions(pool, alice, message, limit=4)
    rest = await versions(pool, alice, message, limit=4, after=first.items[-1].version)
    assert ([v.version for v in first.items], first.has_more) == ([1, 2, 3, 4], True)
    assert ([v.version for v in rest.items], rest.has_more) == ([5, 6], False)
    small = await versions(pool, alice, message, max_bytes=300)
    assert 1 <= len(small.items) < 6 and small.has_more
    tiny = await versions(pool, alice, message, after=1, max_bytes=1)  # always one
    assert ([v.version for v in tiny.items], tiny.has_more) == ([2], True)
    with pytest.raises(InvalidInput):
        await versions(pool, alice, message, after=-1)
    with pytest.raises(InvalidInput):
        await versions(pool, alice, message, limit=0)


# --- retraction -------------------------------------------------------------------------


async def test_retraction_leaves_a_tombstone_in_its_place(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    before = await say(pool, alice, conv, "before")
    message = await say(pool, alice, conv, "oops", metadata={"secret": True}, reply_to=before.id)
    after = await say(pool, alice, conv, "after")
    await edit(pool, alice, message, "oops, edited")

    gone = await retract(pool, alice, message)

    assert (gone.id, gone.seq, gone.parent_seq, gone.reply_to) == (
        message.id,
        message.seq,
        message.parent_seq,
        before.id,
    )
    assert (gone.parts, gone.content, gone.metadata, gone.status) == ([], "", {}, "complete")
    assert gone.retracted_at is not None and gone.sender_id == alice.id
    assert (await versions(pool, alice, message)).items == []  # the content is gone
    left = await pool.fetchval(
        "SELECT count(*) FROM message_versions WHERE conversation_id = $1", conv.id
    )
    assert left == 0
    row = await pool.fetchrow(
        "SELECT retracted_by, active, search_vector::text AS words FROM messages"
        " WHERE conversation_id = $1 AND id = $2",
        conv.id,
        message.id,
    )
    assert (row["retracted_by"], row["active"]) == (alice.id, True)
    assert "oops" not in row["words"]
    page = await messages.list_messages(pool, user_id=alice.id, conversation_id=conv.id)
    assert [(m.seq, m.content) for m in page.items] == [(1, "before"), (2, ""), (3, "after")]
    assert page.items[2].parent_seq == gone.seq == after.parent_seq
    counted = await conversations.get_conversation(pool, user_id=alice.id, conversation_id=conv.id)
    assert counted.message_count == 3 and counted.last_message_at == after.created_at
    assert (await say(pool, alice, conv, "next")).seq == 4


async def test_retracting_twice_returns_the_tombstone_at_any_time(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    message = await say(pool, alice, conv, "oops")
    gone = await retract(pool, alice, message)
    await backdate(pool, message, 86_400)

    again = await retract(pool, alice, message)

    assert again.retracted_at == gone.retracted_at and again.content == ""
    assert again.updated_at == gone.updated_at


async def test_a_retracted_message_can_no_longer_change(pool: Any, alice: User) -> None:
    conv = await make_conversation(pool, alice)
    streaming = await say(pool, alice, conv, "", role="assistant", status="streaming")
    ids = {"user_id": alice.id, "conversation_id": conv.id, "message_id": streaming.id}
    await messages.update_message(pool, **ids, patch=MessagePatch(append_parts=[text("Hel")]))

    gone = await retract(pool, alice, streaming)

    assert (gone.status, gone.parts) == ("complete", [])
    for patch in (
        MessagePatch(append_parts=[text("lo")]),
        MessagePatch(parts=[text("back")]),
        MessagePatch(metadata={"a": 1}),
        MessagePatch(status="complete"),
    ):
        with pytest.raises(MessageRetracted) as caught:
            await messages.update_message(pool, **ids, patch=patch)
        assert caught.value.code == "message_retracted"
    assert await get(pool, alice, streaming) == gone


async def test_retraction_past_the_window_is_refused_and_changes_nothing(
    pool: Any, alice: User
) -> None:
    conv = await make_conversation(pool, alice)
    message = await say(pool, alice, conv, "stays")
    await edit(pool, alice, message, "stays, edited")
    await backdate(pool, message, 301)

    with pytest.raises(EditWindowClosed):
        await retract(pool, alice, message)

    assert (await get(pool, alice, message)).content == "stays, edited"
    assert [v.content for v in (await versions(pool, alice, message)).items] == ["stays"]


async def test_a_retried_append_of_a_retracted_message_does_not_bring_it_back(
    pool: Any, alice: User
) -> None:
    conv = await make_conversation(pool, alice)
    draft = MessageDraft(id=new_id(), role="user", parts=[text("oops")])
    made = await messages.insert_message(
        pool, user_id=alice.id, conversation_id=conv.id, draft=draft
    )
    await retract(pool, alice, made.message)

    with pytest.raises(Conflict):  # idempotency_mismatch: it no longer says "oops"
        await messages.insert_message(pool, user_id=alice.id, conversation_id=conv.id, draft=draft)

    assert (await get(pool, alice, made.message)).content == ""


# --- who may --------------------------------------------------------------------------------


async def conversation_of_roles(pool: Any) -> tuple[Conversation, dict[str, User]]:
    """A conversation with a member of each role, a former member and a stranger."""
    people = {
        name: await make_user(pool, name)
        for name in ("owner", "admin", "moderator", "member", "writer", "former", "stranger")
    }
    conv = await make_conversation(pool, people["owner"])
    for role in ("admin", "moderator", "member"):
        await add_member(pool, conv, people[role], role)
    await add_member(pool, conv, people["writer"], "member")
    await add_member(pool, conv, people["former"], "member")
    return conv, people


async def test_only_the_sender_edits_or_retracts_others_are_told_apart(pool: Any) -> None:
    conv, people = await conversation_of_roles(pool)
    mine = await say(pool, people["writer"], conv, "mine")
    formers = await say(pool, people["former"], conv, "was mine")
    await remove_member(pool, conv, people["former"])

    for role in ("owner", "admin", "moderator", "member"):
        with pytest.raises(NotPermitted):
            await edit(pool, people[role], mine, "not yours")
        with pytest.raises(NotPermitted):
            await retract(pool, people[role], mine)
        with pytest.raises(NotPermitted):
            await messages.update_message(
                pool,
                user_id=people[role].id,
                conversation_id=conv.id,
                message_id=mine.id,
                patch=MessagePatch(metadata={"x": 1}),
            )
        assert (await versions(pool, people[role], mine)).items == []  # any member reads
    for outsider, message in ((people["stranger"], mine), (people["former"], formers)):
        for call in (
            edit(pool, outsider, message, "x"),
            retract(pool, outsider, message),
            versions(pool, outsider, message),
            delete(pool, outsider, message),
        ):
            with pytest.raises(NotFound):
                await call
    assert (await get(pool, people["writer"], mine)).content == "mine"
    assert (await get(pool, people["owner"], formers)).content == "was mine"
    assert (await edit(pool, people["writer"], mine, "mine, edited")).content == "mine, edited"


@pytest.mark.parametrize("role", ["owner", "admin", "moderator"])
async def test_owners_admins_and_moderators_delete_any_message_as_a_tombstone(
    pool: Any, role: str
) -> None:
    conv, people = await conversation_of_roles(pool)
    message = await say(pool, people["writer"], conv, "rude")
    await edit(pool, people["writer"], message, "ruder")
    await backdate(pool, message, 86_400)  # no window for moderation

    await delete(pool, people[role], message)

    gone = await get(pool, people["writer"], message)
    assert (gone.seq, gone.content, gone.parts, gone.metadata) == (message.seq, "", [], {})
    assert gone.retracted_at is not None
    by = await pool.fetchval(
        "SELECT retracted_by FROM messages WHERE conversation_id = $1 AND id = $2",
        conv.id,
        message.id,
    )
    assert by == people[role].id
    assert (await versions(pool, people["writer"], message)).items == []
    with pytest.raises(MessageRetracted):
        await edit(pool, people["writer"], message, "back", edit_window=10**6)


async def test_a_member_may_not_delete_not_even_their_own_message(pool: Any) -> None:
    conv, people = await conversation_of_roles(pool)
    own = await say(pool, people["member"], conv, "mine")
    with pytest.raises(NotPermitted):
        await delete(pool, people["member"], own)
    assert (await get(pool, people["member"], own)).content == "mine"
    assert (await retract(pool, people["member"], own)).content == ""  # retract instead


async def test_moderator_deletion_and_sender_retraction_racing_leave_one_tombstone(
    pool: Any,
) -> None:
    conv, people = await conversation_of_roles(pool)
    message = await say(pool, people["writer"], conv, "race")
    await asyncio.gather(
        retract(pool, people["writer"], message), delete(pool, people["moderator"], message)
    )
    row = await pool.fetchrow(
        "SELECT content, retracted_by FROM messages WHERE conversation_id = $1 AND id = $2",
        conv.id,
        message.id,
    )
    assert row["content"] == ""
    assert row["retracted_by"] in (people["writer"].id, people["moderator"].id)


def test_gateway_edit_window_defaults_to_the_setting() -> None:
    assert messages.EDIT_WINDOW_SECONDS == Settings(_env_file=None).app_edit_window_seconds == 300


async def session_exercise(pool: Any, settings: Settings, run: SessionRun) -> None:
    """Edits, versions, retraction and deletion, for tests/test_session_state.py."""
    user = await run.one("make_user", lambda: make_user(pool))
    conv = await run.one(
        "insert_conversation",
        lambda: conversations.insert_conversation(pool, user_id=user.id, draft=ConversationDraft()),
    )
    made = await run.one("insert_message", lambda: say(pool, user, conv, "v1"))
    other: UUID = new_id()
    await run(
        [
            ("update_message edit", lambda: edit(pool, user, made, "v2")),
            ("update_message window", lambda: edit(pool, user, made, "v3", edit_window=0)),
            ("list_message_versions", lambda: versions(pool, user, made)),
            (
                "list_message_versions missing",
                lambda: messages.list_message_versions(
                    pool, user_id=user.id, conversation_id=conv.id, message_id=other
                ),
            ),
            ("delete_own_message window", lambda: retract(pool, user, made, edit_window=0)),
            ("delete_own_message", lambda: retract(pool, user, made)),
            ("delete_own_message again", lambda: retract(pool, user, made)),
            ("update_message retracted", lambda: edit(pool, user, made, "v4")),
            ("delete_message tombstone", lambda: delete(pool, user, made)),
        ]
    )
