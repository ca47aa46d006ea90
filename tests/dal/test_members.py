"""Gateways of members: rights and ranks enforced in SQL, counts kept, ownership handed over,
a system message for every change (gapless seq), limits under concurrency."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg
import pytest

from dal.database import open_pool
from dal.errors import Conflict, InvalidInput, LimitReached, NotFound, NotPermitted, OverLimit
from dal.gateways import members, messages, users
from dal.ids import new_id
from dal.queries import Q
from dal.records.conversations import Conversation
from dal.records.members import ConversationRole, MemberDraft, MemberPatch
from dal.records.messages import MessageDraft
from dal.records.users import User
from dal.settings import Settings
from tests.dal.conftest import make_conversation, make_user
from tests.dal.test_plans import assert_index_scan, explain

if TYPE_CHECKING:
    from tests.test_session_state import SessionRun


async def shared(pool: Any, owner: User) -> Conversation:
    """A conversation of ``owner``, who is its owner member (creating it made them so)."""
    return await make_conversation(pool, owner)


async def add(
    pool: Any, by: User, conversation: Conversation, user: User, role: ConversationRole = "member"
) -> None:
    added = await members.insert_member(
        pool,
        user_id=by.id,
        conversation_id=conversation.id,
        draft=MemberDraft(user_id=user.id, role=role),
    )
    assert added.created


async def state(pool: Any, conversation_id: UUID) -> dict[str, Any]:
    """What a change may touch: the members and their roles, the conversation's counters and
    owner, and its messages."""
    conv = await pool.fetchrow(
        "SELECT user_id, member_count, last_seq, message_count, leaf_seq FROM conversations"
        " WHERE id = $1",
        conversation_id,
    )
    roles = await pool.fetch(
        "SELECT user_id, role FROM conversation_members WHERE conversation_id = $1"
        " ORDER BY user_id",
        conversation_id,
    )
    seqs = await pool.fetch(
        "SELECT seq FROM messages WHERE conversation_id = $1 ORDER BY seq", conversation_id
    )
    return {
        "conversation": dict(conv),
        "roles": {r["user_id"]: r["role"] for r in roles},
        "seqs": [r["seq"] for r in seqs],
    }


async def events(pool: Any, conversation_id: UUID) -> list[dict[str, Any]]:
    """The conversation's system messages, oldest first: seq, sender and the data parts."""
    rows = await pool.fetch(
        "SELECT seq, sender_id, user_id, parent_seq, active, parts FROM messages"
        " WHERE conversation_id = $1 AND role = 'system' ORDER BY seq",
        conversation_id,
    )
    return [dict(r) for r in rows]


@pytest.fixture
async def group(pool: Any) -> dict[str, Any]:
    """A conversation with an owner, an admin, a moderator and a member (added in that order),
    and a stranger."""
    people = {name: await make_user(pool, name) for name in ("owner", "admin", "mod", "member")}
    people["stranger"] = await make_user(pool, "stranger")
    conversation = await shared(pool, people["owner"])
    await add(pool, people["owner"], conversation, people["admin"], "admin")
    await add(pool, people["owner"], conversation, people["mod"], "moderator")
    await add(pool, people["admin"], conversation, people["member"])
    return {"conversation": conversation, **people}


async def test_insert_member_adds_counts_and_writes_a_system_message(pool: Any) -> None:
    alice, bob = await make_user(pool, "alice"), await make_user(pool, "bob")
    conversation = await shared(pool, alice)
    # history before bob joins: read by him from the start
    await pool.execute(
        'SELECT mnemo_append_system_message($1, $2, $3, \'[{"type": "text", "text": "hi"}]\')',
        conversation.id,
        new_id(),
        alice.id,
    )
    added = await members.insert_member(
        pool, user_id=alice.id, conversation_id=conversation.id, draft=MemberDraft(user_id=bob.id)
    )
    assert added.created
    member = added.member
    assert (member.user_id, member.role, member.added_by) == (bob.id, "member", alice.id)
    assert member.last_read_seq == 1
    after = await state(pool, conversation.id)
    assert after["conversation"] == {
        "user_id": alice.id,
        "member_count": 2,
        "last_seq": 2,
        "message_count": 2,
        "leaf_seq": 2,
    }
    [_, event] = await events(pool, conversation.id)
    assert event["seq"] == 2 and event["parent_seq"] == 1 and event["active"]
    assert (event["sender_id"], event["user_id"]) == (alice.id, alice.id)
    assert event["parts"] == [
        {
            "type": "data-member",
            "data": {
                "action": "added",
                "user_id": str(bob.id),
                "role": "member",
                "by": str(alice.id),
            },
        }
    ]
    # the sender has read their own message
    read = await pool.fetchval(
        "SELECT last_read_seq FROM conversation_members WHERE conversation_id = $1"
        " AND user_id = $2",
        conversation.id,
        alice.id,
    )
    assert read == 2


async def test_insert_member_again_with_same_role_changes_nothing_and_other_role_conflicts(
    pool: Any, group: dict[str, Any]
) -> None:
    conversation, owner, member = group["conversation"], group["owner"], group["member"]
    before = await state(pool, conversation.id)
    again = await members.insert_member(
        pool,
        user_id=owner.id,
        conversation_id=conversation.id,
        draft=MemberDraft(user_id=member.id),
    )
    assert not again.created and again.member.role == "member"
    with pytest.raises(Conflict, match="already a member, as member"):
        await members.insert_member(
            pool,
            user_id=owner.id,
            conversation_id=conversation.id,
            draft=MemberDraft(user_id=member.id, role="moderator"),
        )
    assert await state(pool, conversation.id) == before


async def test_insert_member_of_missing_or_deactivated_user_is_not_found(pool: Any) -> None:
    alice, carol = await make_user(pool, "alice"), await make_user(pool, "carol")
    conversation = await shared(pool, alice)
    await users.deactivate_user(pool, user_id=carol.id)
    before = await state(pool, conversation.id)
    for missing in (new_id(), carol.id):
        with pytest.raises(NotFound, match="user"):
            await members.insert_member(
                pool,
                user_id=alice.id,
                conversation_id=conversation.id,
                draft=MemberDraft(user_id=missing),
            )
    assert await state(pool, conversation.id) == before


async def test_insert_member_into_a_full_direct_conversation_is_refused(pool: Any) -> None:
    alice, bob, carol = [await make_user(pool, n) for n in ("alice", "bob", "carol")]
    conversation = await shared(pool, alice)
    await pool.execute("UPDATE conversations SET kind = 'direct' WHERE id = $1", conversation.id)
    await add(pool, alice, conversation, bob)
    before = await state(pool, conversation.id)
    with pytest.raises(LimitReached) as refused:
        await add(pool, alice, conversation, carol)
    assert refused.value.code == "direct_conversation_full"
    assert not isinstance(refused.value, OverLimit)  # 409, not 429
    assert await state(pool, conversation.id) == before


async def test_insert_member_concurrently_never_passes_max_members(settings: Settings) -> None:
    pool = await open_pool(settings.model_copy(update={"db_max_connections": 20}))
    try:
        owner = await make_user(pool, "owner")
        others = [await make_user(pool) for _ in range(20)]
        conversation = await shared(pool, owner)
        results = await asyncio.gather(
            *(
                members.insert_member(
                    pool,
                    user_id=owner.id,
                    conversation_id=conversation.id,
                    draft=MemberDraft(user_id=user.id),
                    max_members=5,
                )
                for user in others
            ),
            return_exceptions=True,
        )
        added = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, BaseException)]
        assert len(added) == 4  # the owner is the fifth
        assert all(isinstance(r, OverLimit) for r in refused), refused
        assert "APP_MAX_MEMBERS" in str(refused[0])
        after = await state(pool, conversation.id)
        assert len(after["roles"]) == after["conversation"]["member_count"] == 5
        assert after["seqs"] == [1, 2, 3, 4]  # one system message per add, gapless
    finally:
        await pool.close()


async def test_membership_changes_and_appends_concurrently_share_one_gapless_seq(
    settings: Settings,
) -> None:
    pool = await open_pool(settings.model_copy(update={"db_max_connections": 20}))
    try:
        owner = await make_user(pool, "owner")
        others = [await make_user(pool) for _ in range(8)]
        conversation = await shared(pool, owner)
        text = [{"type": "text", "text": "hi"}]
        await asyncio.gather(
            *(
                members.insert_member(
                    pool,
                    user_id=owner.id,
                    conversation_id=conversation.id,
                    draft=MemberDraft(user_id=user.id),
                )
                for user in others
            ),
            *(
                messages.insert_message(
                    pool,
                    user_id=owner.id,
                    conversation_id=conversation.id,
                    draft=MessageDraft(role="user", parts=text),
                )
                for _ in range(12)
            ),
        )
        after = await state(pool, conversation.id)
        assert after["seqs"] == list(range(1, 21))
        assert after["conversation"]["member_count"] == len(after["roles"]) == 9
        assert after["conversation"]["leaf_seq"] == after["conversation"]["last_seq"] == 20
        # one branch: each message follows the one before
        parents = await pool.fetch(
            "SELECT seq, parent_seq FROM messages WHERE conversation_id = $1 ORDER BY seq",
            conversation.id,
        )
        assert [(r["seq"], r["parent_seq"]) for r in parents] == [
            (n, n - 1 if n > 1 else None) for n in range(1, 21)
        ]
    finally:
        await pool.close()


async def test_max_members_zero_is_no_limit(pool: Any) -> None:
    owner = await make_user(pool, "owner")
    conversation = await shared(pool, owner)
    for _ in range(3):
        user = await make_user(pool)
        await members.insert_member(
            pool,
            user_id=owner.id,
            conversation_id=conversation.id,
            draft=MemberDraft(user_id=user.id),
            max_members=0,
        )
    assert (await state(pool, conversation.id))["conversation"]["member_count"] == 4


async def test_list_members_pages_in_join_order_and_hides_from_non_members(
    pool: Any, group: dict[str, Any]
) -> None:
    conversation = group["conversation"]
    first = await members.list_members(
        pool, user_id=group["member"].id, conversation_id=conversation.id, limit=3
    )
    assert [m.user_id for m in first.items] == [group[n].id for n in ("owner", "admin", "mod")]
    assert [m.role for m in first.items] == ["owner", "admin", "moderator"]
    assert first.next_cursor is not None
    second = await members.list_members(
        pool,
        user_id=group["member"].id,
        conversation_id=conversation.id,
        limit=3,
        cursor=first.next_cursor,
    )
    assert [m.user_id for m in second.items] == [group["member"].id]
    assert second.next_cursor is None
    assert second.items[0].added_by == group["admin"].id
    with pytest.raises(NotFound):
        await members.list_members(
            pool, user_id=group["stranger"].id, conversation_id=conversation.id
        )
    with pytest.raises(NotFound):
        await members.list_members(pool, user_id=group["owner"].id, conversation_id=new_id())
    with pytest.raises(InvalidInput):
        await members.list_members(
            pool, user_id=group["owner"].id, conversation_id=conversation.id, cursor="nope"
        )


@pytest.mark.parametrize(
    ("actor", "role", "allowed"),
    [
        ("owner", "admin", True),
        ("owner", "owner", False),  # adding an owner: never (ownership is handed over)
        ("admin", "moderator", True),
        ("admin", "admin", False),  # not one's own rank
        ("mod", "member", False),  # moderators may not add
        ("member", "member", False),
    ],
)
async def test_insert_member_needs_add_member_and_a_lower_role(
    pool: Any, group: dict[str, Any], actor: str, role: ConversationRole, allowed: bool
) -> None:
    conversation, newcomer = group["conversation"], group["stranger"]
    before = await state(pool, conversation.id)
    call = members.insert_member(
        pool,
        user_id=group[actor].id,
        conversation_id=conversation.id,
        draft=MemberDraft(user_id=newcomer.id, role=role),
    )
    if allowed:
        assert (await call).member.role == role
    else:
        with pytest.raises(NotPermitted):
            await call
        assert await state(pool, conversation.id) == before


@pytest.mark.parametrize(
    ("actor", "target", "role", "allowed"),
    [
        ("owner", "admin", "member", True),
        ("admin", "mod", "member", True),
        ("admin", "member", "moderator", True),
        ("admin", "member", "admin", False),  # new role not below the actor's
        ("admin", "owner", "member", False),  # old role above
        ("mod", "member", "moderator", False),  # no change_role
        ("member", "member", "moderator", False),  # not even one's own
        ("admin", "admin", "member", False),  # oneself
    ],
)
async def test_update_member_role_needs_change_role_and_both_roles_below(
    pool: Any,
    group: dict[str, Any],
    actor: str,
    target: str,
    role: ConversationRole,
    allowed: bool,
) -> None:
    conversation = group["conversation"]
    before = await state(pool, conversation.id)
    call = members.update_member_role(
        pool,
        user_id=group[actor].id,
        conversation_id=conversation.id,
        member_id=group[target].id,
        patch=MemberPatch(role=role),
    )
    if allowed:
        assert (await call).role == role
        [*_, event] = await events(pool, conversation.id)
        assert event["parts"][0]["data"] == {
            "action": "role_changed",
            "user_id": str(group[target].id),
            "role": role,
            "by": str(group[actor].id),
        }
    else:
        with pytest.raises(NotPermitted):
            await call
        assert await state(pool, conversation.id) == before


async def test_update_member_role_to_owner_hands_ownership_over(
    pool: Any, group: dict[str, Any]
) -> None:
    conversation, owner, mod = group["conversation"], group["owner"], group["mod"]
    changed = await members.update_member_role(
        pool,
        user_id=owner.id,
        conversation_id=conversation.id,
        member_id=mod.id,
        patch=MemberPatch(role="owner"),
    )
    assert changed.role == "owner"
    after = await state(pool, conversation.id)
    assert after["roles"][mod.id] == "owner" and after["roles"][owner.id] == "admin"
    assert after["conversation"]["user_id"] == mod.id
    # the messages belong to the new owner now (the search index's owner column)
    assert await pool.fetchval(
        "SELECT bool_and(user_id = $2) FROM messages WHERE conversation_id = $1",
        conversation.id,
        mod.id,
    )
    [*_, event] = await events(pool, conversation.id)
    assert [p["data"] for p in event["parts"]] == [
        {"action": "role_changed", "user_id": str(mod.id), "role": "owner", "by": str(owner.id)},
        {"action": "role_changed", "user_id": str(owner.id), "role": "admin", "by": str(owner.id)},
    ]
    assert event["user_id"] == mod.id and event["sender_id"] == owner.id
    # the old owner, an admin now, may no longer hand it on, nor touch the owner
    with pytest.raises(NotPermitted):
        await members.update_member_role(
            pool,
            user_id=owner.id,
            conversation_id=conversation.id,
            member_id=mod.id,
            patch=MemberPatch(role="admin"),
        )


async def test_update_member_role_to_the_same_role_changes_nothing(
    pool: Any, group: dict[str, Any]
) -> None:
    conversation = group["conversation"]
    before = await state(pool, conversation.id)
    same = await members.update_member_role(
        pool,
        user_id=group["owner"].id,
        conversation_id=conversation.id,
        member_id=group["member"].id,
        patch=MemberPatch(role="member"),
    )
    assert same.role == "member"
    assert await state(pool, conversation.id) == before


async def test_update_member_role_of_a_non_member_is_not_found(
    pool: Any, group: dict[str, Any]
) -> None:
    with pytest.raises(NotFound, match="member"):
        await members.update_member_role(
            pool,
            user_id=group["owner"].id,
            conversation_id=group["conversation"].id,
            member_id=group["stranger"].id,
            patch=MemberPatch(role="member"),
        )


@pytest.mark.parametrize(
    ("actor", "target", "allowed"),
    [
        ("owner", "admin", True),
        ("admin", "mod", True),
        ("mod", "member", True),
        ("mod", "admin", False),
        ("admin", "owner", False),
        ("member", "member", True),  # oneself: leaving
        ("member", "mod", False),
    ],
)
async def test_delete_member_needs_remove_member_and_a_lower_rank(
    pool: Any, group: dict[str, Any], actor: str, target: str, allowed: bool
) -> None:
    conversation = group["conversation"]
    before = await state(pool, conversation.id)
    call = members.delete_member(
        pool, user_id=group[actor].id, conversation_id=conversation.id, member_id=group[target].id
    )
    if allowed:
        gone = await call
        assert gone.user_id == group[target].id
        after = await state(pool, conversation.id)
        assert group[target].id not in after["roles"]
        assert after["conversation"]["member_count"] == 3
        [*_, event] = await events(pool, conversation.id)
        action = "left" if actor == target else "removed"
        assert event["parts"][0]["data"] == {
            "action": action,
            "user_id": str(group[target].id),
            "role": gone.role,
            "by": str(group[actor].id),
        }
        # a former member sees nothing
        with pytest.raises(NotFound):
            await members.list_members(
                pool, user_id=group[target].id, conversation_id=conversation.id
            )
    else:
        with pytest.raises(NotPermitted):
            await call
        assert await state(pool, conversation.id) == before


async def test_owner_leaving_hands_ownership_to_highest_ranked_longest_standing(
    pool: Any, group: dict[str, Any]
) -> None:
    conversation, owner = group["conversation"], group["owner"]
    second_admin = await make_user(pool, "admin2")
    await add(pool, owner, conversation, second_admin, "admin")  # joined after "admin"
    await members.delete_member_self(pool, user_id=owner.id, conversation_id=conversation.id)
    after = await state(pool, conversation.id)
    assert owner.id not in after["roles"]
    assert after["roles"][group["admin"].id] == "owner"
    assert after["roles"][second_admin.id] == "admin"
    assert after["conversation"]["user_id"] == group["admin"].id
    assert after["conversation"]["member_count"] == 4
    [*_, event] = await events(pool, conversation.id)
    assert [p["data"]["action"] for p in event["parts"]] == ["left", "role_changed"]
    assert event["parts"][1]["data"]["user_id"] == str(group["admin"].id)
    assert event["user_id"] == group["admin"].id  # the message's owner column: the new owner


async def test_owner_alone_may_not_leave(pool: Any) -> None:
    alice = await make_user(pool, "alice")
    conversation = await shared(pool, alice)
    before = await state(pool, conversation.id)
    with pytest.raises(Conflict, match="delete the conversation"):
        await members.delete_member_self(pool, user_id=alice.id, conversation_id=conversation.id)
    assert await state(pool, conversation.id) == before


async def test_non_members_get_not_found_for_every_change(pool: Any, group: dict[str, Any]) -> None:
    conversation, stranger, member = group["conversation"], group["stranger"], group["member"]
    before = await state(pool, conversation.id)
    calls = [
        members.insert_member(
            pool,
            user_id=stranger.id,
            conversation_id=conversation.id,
            draft=MemberDraft(user_id=stranger.id),
        ),
        members.update_member_role(
            pool,
            user_id=stranger.id,
            conversation_id=conversation.id,
            member_id=member.id,
            patch=MemberPatch(role="member"),
        ),
        members.delete_member(
            pool, user_id=stranger.id, conversation_id=conversation.id, member_id=member.id
        ),
        members.delete_member_self(pool, user_id=stranger.id, conversation_id=conversation.id),
    ]
    for call in calls:
        with pytest.raises(NotFound, match="conversation"):
            await call
    assert await state(pool, conversation.id) == before


async def test_every_change_appends_one_system_message_gapless(
    pool: Any, group: dict[str, Any]
) -> None:
    conversation, owner = group["conversation"], group["owner"]
    await members.update_member_role(
        pool,
        user_id=owner.id,
        conversation_id=conversation.id,
        member_id=group["member"].id,
        patch=MemberPatch(role="moderator"),
    )
    await members.delete_member(
        pool, user_id=owner.id, conversation_id=conversation.id, member_id=group["mod"].id
    )
    await members.delete_member_self(
        pool, user_id=group["admin"].id, conversation_id=conversation.id
    )
    after = await state(pool, conversation.id)
    assert after["seqs"] == [1, 2, 3, 4, 5, 6]
    assert after["conversation"]["last_seq"] == after["conversation"]["message_count"] == 6
    assert after["conversation"]["leaf_seq"] == 6
    found = await events(pool, conversation.id)
    assert [e["parent_seq"] for e in found] == [None, 1, 2, 3, 4, 5]
    assert [e["parts"][0]["data"]["action"] for e in found] == [
        "added",
        "added",
        "added",
        "role_changed",
        "removed",
        "left",
    ]


async def test_a_refused_change_leaves_the_callers_transaction_usable(
    pool: Any, group: dict[str, Any]
) -> None:
    conversation = group["conversation"]
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(NotPermitted):
            await members.insert_member(
                conn,
                user_id=group["member"].id,
                conversation_id=conversation.id,
                draft=MemberDraft(user_id=group["stranger"].id),
            )
        added = await members.insert_member(
            conn,
            user_id=group["owner"].id,
            conversation_id=conversation.id,
            draft=MemberDraft(user_id=group["stranger"].id),
        )
        assert added.created
    assert group["stranger"].id in (await state(pool, conversation.id))["roles"]


async def test_list_members_is_served_by_its_index(settings: Settings, pool: Any) -> None:
    owner = await make_user(pool, "owner")
    conversation = await shared(pool, owner)
    await pool.execute(
        "INSERT INTO users (id, username) SELECT gen_random_uuid(), 'u' || i"
        " FROM generate_series(1, 2000) AS i"
    )
    await pool.execute(
        "INSERT INTO conversation_members (conversation_id, user_id, role)"
        " SELECT $1, id, 'member' FROM users WHERE username LIKE 'u%'",
        conversation.id,
    )
    await pool.execute("ANALYZE conversation_members")
    conn: asyncpg.Connection[Any] = await asyncpg.connect(settings.database_url)
    try:
        for generic in (False, True):
            nodes = await explain(
                conn,
                Q["list_members"],
                owner.id,
                conversation.id,
                datetime.min.replace(tzinfo=UTC),
                UUID(int=0),
                51,
                generic=generic,
            )
            assert_index_scan(nodes, "conversation_members_joined_idx", "conversation_members")
    finally:
        await conn.close()


async def session_exercise(pool: Any, settings: Settings, run: SessionRun) -> None:
    """Members, for tests/test_session_state.py."""
    owner = await run.one("make_user", lambda: make_user(pool))
    other = await run.one("make_user", lambda: make_user(pool))
    conversation = await run.one("make_conversation", lambda: shared(pool, owner))
    cid = conversation.id
    await run(
        [
            (
                "insert_member",
                lambda: members.insert_member(
                    pool, user_id=owner.id, conversation_id=cid, draft=MemberDraft(user_id=other.id)
                ),
            ),
            (
                "insert_member refused",
                lambda: members.insert_member(
                    pool, user_id=other.id, conversation_id=cid, draft=MemberDraft(user_id=owner.id)
                ),
            ),
            (
                "list_members",
                lambda: members.list_members(pool, user_id=other.id, conversation_id=cid),
            ),
            (
                "update_member_role",
                lambda: members.update_member_role(
                    pool,
                    user_id=owner.id,
                    conversation_id=cid,
                    member_id=other.id,
                    patch=MemberPatch(role="admin"),
                ),
            ),
            (
                "delete_member",
                lambda: members.delete_member(
                    pool, user_id=owner.id, conversation_id=cid, member_id=other.id
                ),
            ),
            (
                "delete_member_self",
                lambda: members.delete_member_self(pool, user_id=owner.id, conversation_id=cid),
            ),
        ]
    )
