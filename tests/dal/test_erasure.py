"""Erasing a user (README "Erasing a user", dal/usecases/erasure.py): proven complete against the
catalog. Every table of the schema is listed from pg_tables and must be classified in
dal.usecases.erasure (a table added later fails here until erasure deals with it); a rich data
set of a victim and bystanders sharing conversations is made through the gateways; after the
erasure no row of any table holds the victim's id anywhere in it (any column, jsonb included),
and the bystanders' own data is all there."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest

from dal.errors import NotFound
from dal.gateways import feedback, members, messages, reads, users
from dal.ids import new_id
from dal.records.feedback import FeedbackDraft
from dal.records.members import MemberDraft
from dal.records.messages import MessageDraft, MessagePatch
from dal.records.users import User
from dal.usecases import attachments, erasure
from tests.dal.conftest import make_conversation, make_user

# Columns that can hold a user's id: a foreign key to users, or a uuid column named so.
USER_COLUMN = re.compile(
    r"^(user_id|owner|sender_id|retracted_by|edited_by|added_by|author_id|created_by|"
    r"updated_by|deleted_by|by|member_id|actor_id|uploader_id)$"
)


async def schema_tables(conn: Any) -> set[str]:
    """Every table of the public schema, yoyo's own left out."""
    rows = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
        "AND tablename NOT LIKE '\\_yoyo%' AND tablename NOT LIKE 'yoyo%'"
    )
    return {r["tablename"] for r in rows}


async def user_columns(conn: Any) -> set[tuple[str, str]]:
    """(table, column) of every column that can hold a user's id."""
    rows = await conn.fetch(
        """
        SELECT c.table_name, c.column_name, c.data_type
          FROM information_schema.columns AS c
         WHERE c.table_schema = 'public'
        """
    )
    found = {
        (r["table_name"], r["column_name"])
        for r in rows
        if r["data_type"] == "uuid" and USER_COLUMN.match(r["column_name"])
    }
    fks = await conn.fetch(
        """
        SELECT k.conrelid::regclass::text AS table_name, a.attname AS column_name
          FROM pg_constraint AS k
          JOIN pg_attribute AS a ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)
         WHERE k.contype = 'f'
           AND k.confrelid = 'users'::regclass
        """
    )
    return found | {(r["table_name"], r["column_name"]) for r in fks}


async def assert_classified(conn: Any) -> None:
    """Every table is in erasure.TABLES or erasure.NO_USER_DATA, and no table said to hold no
    user data has a column that can hold a user's id."""
    tables = await schema_tables(conn)
    known = set(erasure.TABLES) | set(erasure.NO_USER_DATA)
    unclassified = sorted(tables - known)
    assert not unclassified, (
        f"tables {unclassified} are not classified for erasing a user: extend erasure "
        "(dal/usecases/erasure.py: TABLES, with the statements that erase them, or "
        "NO_USER_DATA with the reason)"
    )
    gone = sorted(known - tables)
    assert not gone, f"erasure classifies tables the schema no longer has: {gone}"
    holding = sorted({t for t, _ in await user_columns(conn)} & set(erasure.NO_USER_DATA))
    assert not holding, f"tables {holding} hold user ids: extend erasure to erase them"


async def rows_naming(conn: Any, user_id: UUID) -> dict[str, int]:
    """Rows of each table whose text (every column, jsonb included) holds the user's id."""
    found = {}
    for table in sorted(await schema_tables(conn)):
        n = await conn.fetchval(
            f'SELECT count(*) FROM "{table}" AS r WHERE strpos(r::text, $1) > 0', str(user_id)
        )
        if n:
            found[table] = n
    return found


async def user_column_rows(conn: Any, user_id: UUID) -> dict[str, int]:
    """Rows holding the user's id in a column that can hold one."""
    found = {}
    for table, column in sorted(await user_columns(conn)):
        n = await conn.fetchval(f'SELECT count(*) FROM "{table}" WHERE "{column}" = $1', user_id)
        if n:
            found[f"{table}.{column}"] = n
    return found


def text(body: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": body}]


async def say(pool: Any, user: User, conversation_id: UUID, body: str, **kw: Any) -> Any:
    parts = kw.pop("parts", None) or text(body)
    appended = await messages.insert_message(
        pool,
        user_id=user.id,
        conversation_id=conversation_id,
        draft=MessageDraft(role=kw.pop("role", "user"), parts=parts, **kw),
    )
    return appended.message


async def upload(pool: Any, user: User, conversation_id: UUID, data: bytes) -> UUID:
    async def content() -> AsyncIterator[bytes]:
        yield data

    uploaded = await attachments.upload_attachment(
        pool,
        user_id=user.id,
        conversation_id=conversation_id,
        name="notes.txt",
        declared_type="text/plain",
        content=content(),
        max_bytes=1 << 20,
    )
    return uploaded.attachment.id


def file_part(attachment_id: UUID) -> list[dict[str, Any]]:
    return [{"type": "file", "mediaType": "text/plain", "url": f"/v1/attachments/{attachment_id}"}]


async def own_things(pool: Any, user: User, tag: str) -> None:
    """A user's tasks (with events), snapshot, profile, thread with checkpoints, blobs and
    writes, and a second token: rows only they own."""
    thread = f"thread-{tag}"
    await pool.execute(
        "INSERT INTO tasks (id, user_id, kind, title, input) VALUES ($1, $2, 'research', $3, $4)",
        new_id(),
        user.id,
        f"task of {tag}",
        {"owner": str(user.id)},
    )
    await pool.execute(
        "INSERT INTO workspace_snapshots (id, user_id, name, panels, origin) "
        "VALUES ($1, $2, $3, '[]', 'manual')",
        new_id(),
        user.id,
        f"snap {tag}",
    )
    await pool.execute(
        "INSERT INTO profiles (id, user_id, kind, name, settings) VALUES ($1, $2, 'llm', $3, '{}')",
        new_id(),
        user.id,
        f"p-{tag}",
    )
    await pool.execute(
        "INSERT INTO threads (thread_id, owner, user_id, metadata) VALUES ($1, $2, $2, $3)",
        thread,
        user.id,
        {"user_id": str(user.id)},
    )
    for i in range(5):
        await pool.execute(
            "INSERT INTO checkpoints (thread_id, owner, checkpoint_ns, checkpoint_id, checkpoint,"
            " metadata) VALUES ($1, $2, '', $3, '{}', $4)",
            thread,
            user.id,
            f"c{i}",
            {"user_id": str(user.id)},
        )
        await pool.execute(
            "INSERT INTO checkpoint_blobs (thread_id, owner, checkpoint_ns, channel, version,"
            " type, blob) VALUES ($1, $2, '', 'messages', $3, 'json', '\\x00')",
            thread,
            user.id,
            str(i),
        )
        await pool.execute(
            "INSERT INTO checkpoint_writes (thread_id, owner, checkpoint_ns, checkpoint_id,"
            " task_id, idx, channel, type, blob) VALUES ($1, $2, '', $3, 't', 0, 'x', 'json',"
            " '\\x00')",
            thread,
            user.id,
            f"c{i}",
        )
    await users.insert_token(pool, user_id=user.id, name=f"second {tag}")
    # Identity (README "Identity"): a password, two sign-in sessions of three refresh tokens
    # each (two used, one current), failed sign-ins of their username from two addresses.
    await pool.execute(
        "INSERT INTO user_passwords (user_id, hash, updated_at) VALUES ($1, 'h', now())", user.id
    )
    for _ in range(2):
        session = new_id()
        await pool.execute(
            "INSERT INTO auth_sessions (id, user_id, created_at, expires_at) "
            "VALUES ($1, $2, now(), now() + interval '1 day')",
            session,
            user.id,
        )
        for used in (True, True, False):
            await pool.execute(
                "INSERT INTO refresh_tokens (token_hash, session_id, created_at, used_at) "
                "VALUES ($1, $2, now(), CASE WHEN $3 THEN now() END)",
                os.urandom(32),
                session,
                used,
            )
    for client in ("10.0.0.1", "10.0.0.2"):
        await pool.execute(
            "INSERT INTO login_failures (username, client, failures, last_failed_at) "
            "VALUES ($1, $2, 3, now())",
            user.username,
            client,
        )


@dataclass
class World:
    victim: User
    bystander: User
    third: User
    victim_owned: UUID  # the victim's own conversation, shared with the bystander
    shared: UUID  # the bystander's, where the victim is an admin


async def populate(pool: Any) -> World:
    """A victim and two bystanders sharing conversations, each with data of their own."""
    victim = await make_user(pool, "victim")
    bystander = await make_user(pool, "bystander")
    third = await make_user(pool, "third")
    await users.insert_token(pool, user_id=victim.id)
    await users.insert_token(pool, user_id=bystander.id)

    # The victim's own conversation, shared with the bystander.
    mine = await make_conversation(pool, victim, "victim's")
    await members.insert_member(
        pool, user_id=victim.id, conversation_id=mine.id, draft=MemberDraft(user_id=bystander.id)
    )
    first = await say(pool, victim, mine.id, "hello from the victim")
    await messages.update_message(
        pool,
        user_id=victim.id,
        conversation_id=mine.id,
        message_id=first.id,
        patch=MessagePatch(parts=text("hello, edited")),
    )
    answer = await say(pool, bystander, mine.id, "hi victim", reply_to=first.id)
    await feedback.upsert_feedback(
        pool,
        user_id=victim.id,
        conversation_id=mine.id,
        message_id=answer.id,
        draft=FeedbackDraft(rating="up"),
    )
    await feedback.upsert_feedback(
        pool,
        user_id=bystander.id,
        conversation_id=mine.id,
        message_id=first.id,
        draft=FeedbackDraft(rating="down"),
    )
    private = await upload(pool, victim, mine.id, b"the victim's private notes")
    await say(pool, victim, mine.id, "", parts=file_part(private))

    # The bystander's conversation, the victim an admin in it.
    theirs = await make_conversation(pool, bystander, "bystander's")
    await members.insert_member(
        pool,
        user_id=bystander.id,
        conversation_id=theirs.id,
        draft=MemberDraft(user_id=victim.id, role="admin"),
    )
    question = await say(pool, bystander, theirs.id, "what do you think?")
    said = await say(pool, victim, theirs.id, "I think so", reply_to=question.id)
    await messages.update_message(
        pool,
        user_id=victim.id,
        conversation_id=theirs.id,
        message_id=said.id,
        patch=MessagePatch(parts=text("I think so, yes")),
    )
    streamed = await say(pool, victim, theirs.id, "streaming", status="streaming")
    await messages.update_message(
        pool,
        user_id=victim.id,
        conversation_id=theirs.id,
        message_id=streamed.id,
        patch=MessagePatch(append_parts=text(" more of the victim's words")),
    )
    await messages.update_message(
        pool,
        user_id=victim.id,
        conversation_id=theirs.id,
        message_id=streamed.id,
        patch=MessagePatch(status="complete"),
    )
    await feedback.upsert_feedback(
        pool,
        user_id=victim.id,
        conversation_id=theirs.id,
        message_id=question.id,
        draft=FeedbackDraft(rating="down", comment="meh"),
    )
    spam = await say(pool, bystander, theirs.id, "oops, a typo")
    await messages.delete_message(
        pool, user_id=victim.id, conversation_id=theirs.id, message_id=spam.id
    )
    await members.insert_member(
        pool, user_id=victim.id, conversation_id=theirs.id, draft=MemberDraft(user_id=third.id)
    )
    shared_file = await upload(pool, victim, theirs.id, b"a file the victim shared")
    await say(pool, victim, theirs.id, "", parts=file_part(shared_file))
    # The bystander re-shares the victim's file in a message of their own.
    await say(pool, bystander, theirs.id, "", parts=file_part(shared_file))
    await reads.update_read_state(pool, user_id=victim.id, conversation_id=theirs.id)
    await say(pool, bystander, theirs.id, "the bystander's last word")

    # One the victim wrote in and left, one they were removed from without writing.
    left = await make_conversation(pool, bystander, "left")
    await members.insert_member(
        pool, user_id=bystander.id, conversation_id=left.id, draft=MemberDraft(user_id=victim.id)
    )
    await say(pool, victim, left.id, "bye")
    await members.delete_member_self(pool, user_id=victim.id, conversation_id=left.id)
    removed = await make_conversation(pool, bystander, "removed")
    await members.insert_member(
        pool,
        user_id=bystander.id,
        conversation_id=removed.id,
        draft=MemberDraft(user_id=victim.id),
    )
    await members.delete_member(
        pool, user_id=bystander.id, conversation_id=removed.id, member_id=victim.id
    )
    await say(pool, bystander, removed.id, "after the victim")

    for user, tag in ((victim, "v"), (bystander, "b"), (third, "t")):
        await own_things(pool, user, tag)
    return World(victim, bystander, third, mine.id, theirs.id)


async def owned_counts(conn: Any, user: User) -> dict[str, int]:
    """What the user owns or wrote, counted (a bystander's must not change)."""
    figures = {}
    for label, sql in {
        "conversations": "SELECT count(*) FROM conversations WHERE user_id = $1",
        "messages sent": "SELECT count(*) FROM messages WHERE sender_id = $1",
        "messages in own": "SELECT count(*) FROM messages WHERE user_id = $1",
        "memberships": "SELECT count(*) FROM conversation_members WHERE user_id = $1",
        "tasks": "SELECT count(*) FROM tasks WHERE user_id = $1",
        "snapshots": "SELECT count(*) FROM workspace_snapshots WHERE user_id = $1",
        "profiles": "SELECT count(*) FROM profiles WHERE user_id = $1",
        "threads": "SELECT count(*) FROM threads WHERE user_id = $1",
        "checkpoints": "SELECT count(*) FROM checkpoints WHERE owner = $1",
        "blobs": "SELECT count(*) FROM checkpoint_blobs WHERE owner = $1",
        "writes": "SELECT count(*) FROM checkpoint_writes WHERE owner = $1",
        "tokens": "SELECT count(*) FROM api_tokens WHERE user_id = $1",
        "password": "SELECT count(*) FROM user_passwords WHERE user_id = $1",
        "sessions": "SELECT count(*) FROM auth_sessions WHERE user_id = $1",
        "refresh tokens": "SELECT count(*) FROM refresh_tokens AS r JOIN auth_sessions AS s"
        " ON s.id = r.session_id WHERE s.user_id = $1",
        "login failures": "SELECT count(*) FROM login_failures AS f JOIN users AS u"
        " ON u.username = f.username WHERE u.id = $1",
        "attachments": "SELECT count(*) FROM attachments WHERE user_id = $1",
        "users": "SELECT count(*) FROM users WHERE id = $1",
    }.items():
        figures[label] = await conn.fetchval(sql, user.id)
    return figures


async def test_every_table_of_the_schema_is_classified_for_erasure(pool: Any) -> None:
    async with pool.acquire() as conn:
        await assert_classified(conn)


async def test_a_table_added_later_without_erasure_fails_the_classification(
    pool: Any,
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("CREATE TABLE future_notes (user_id uuid REFERENCES users (id))")
        with pytest.raises(AssertionError, match=r"future_notes.*extend erasure"):
            await assert_classified(conn)
        await conn.execute("DROP TABLE future_notes")


async def test_the_completeness_check_itself_finds_a_row_left_behind(pool: Any) -> None:
    world = await populate(pool)
    async with pool.acquire() as conn:
        before = await rows_naming(conn, world.victim.id)
    # Everything that names the victim is found, jsonb included (threads' metadata).
    assert {"users", "messages", "conversation_events", "threads", "checkpoints"} <= set(before)
    assert before["conversation_members"] >= 1


async def test_erasure_leaves_no_row_naming_the_user_in_any_table(pool: Any) -> None:
    world = await populate(pool)
    async with pool.acquire() as conn:
        bystanders = {
            u.username: await owned_counts(conn, u) for u in (world.bystander, world.third)
        }
        # The bystander's messages in the victim's conversation go with it.
        lost = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE sender_id = $1 AND conversation_id = $2",
            world.bystander.id,
            world.victim_owned,
        )
    report = await erasure.erase_user(pool, user_id=world.victim.id, batch=2)
    async with pool.acquire() as conn:
        assert await rows_naming(conn, world.victim.id) == {}
        # Rows keyed by the username rather than the id:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM login_failures WHERE username = $1", world.victim.username
            )
            == 0
        )
        assert await user_column_rows(conn, world.victim.id) == {}
        for user in (world.bystander, world.third):
            after = await owned_counts(conn, user)
            expected = dict(bystanders[user.username])
            if user is world.bystander:
                expected["messages sent"] -= lost
                expected["memberships"] -= 1
            assert after == expected, user.username
        # The bystander's conversation reads on: the victim's words are tombstones.
        rows = await conn.fetch(
            "SELECT sender_id, role, parts, retracted_at IS NOT NULL AS gone, reply_to "
            "FROM messages WHERE conversation_id = $1 ORDER BY seq",
            world.shared,
        )
        erased = [r for r in rows if r["sender_id"] is None and r["role"] != "system"]
        assert erased and all(r["parts"] == [] and r["gone"] for r in erased)
        assert any(r["reply_to"] is not None for r in erased)  # replies kept
        conv = await conn.fetchrow(
            "SELECT member_count, message_count FROM conversations WHERE id = $1", world.shared
        )
        assert conv["member_count"] == await conn.fetchval(
            "SELECT count(*) FROM conversation_members WHERE conversation_id = $1", world.shared
        )
        assert conv["message_count"] == len(rows)
        # Feedback counters follow the victim's feedback going.
        counted = await conn.fetchval(
            "SELECT sum(feedback_up + feedback_down) FROM messages WHERE conversation_id = $1",
            world.shared,
        )
        assert counted == await conn.fetchval(
            "SELECT count(*) FROM message_feedback WHERE conversation_id = $1", world.shared
        )
    assert report.username == "victim"
    assert report.deleted["users"] == 1
    assert report.anonymized["messages"] >= 4


async def test_the_report_counts_what_was_there(pool: Any) -> None:
    world = await populate(pool)
    v = world.victim.id
    async with pool.acquire() as conn:
        expected = {
            "conversations": 1,
            "messages": await conn.fetchval(
                "SELECT count(*) FROM messages WHERE conversation_id = $1", world.victim_owned
            ),
            "tasks": 1,
            "task_events": await conn.fetchval(
                "SELECT count(*) FROM task_events AS e JOIN tasks AS t ON t.id = e.task_id "
                "WHERE t.user_id = $1",
                v,
            ),
            "workspace_snapshots": 1,
            "profiles": 1,
            "threads": 1,
            "checkpoints": 5,
            "checkpoint_blobs": 5,
            "checkpoint_writes": 5,
            "api_tokens": await conn.fetchval(
                "SELECT count(*) FROM api_tokens WHERE user_id = $1", v
            ),
            "attachments": 2,
            "users": 1,
            "auth_sessions": 2,
            "refresh_tokens": 6,
            "login_failures": 2,
        }
        feedback_rows = await conn.fetchval(
            "SELECT count(*) FROM message_feedback WHERE user_id = $1 OR conversation_id = $2",
            v,
            world.victim_owned,
        )
    report = await erasure.erase_user(pool, user_id=v, batch=3)
    for table, n in expected.items():
        assert report.deleted.get(table) == n, table
    assert report.deleted["message_feedback"] == feedback_rows
    assert report.deleted["conversation_members"] >= 2  # theirs in the shared one + own conv's
    assert report.deleted["attachment_chunks"] == 2
    assert report.batches > len(expected)


@pytest.mark.parametrize("cut_after", [1, 7, 25, 60])
async def test_an_erasure_cut_short_finishes_when_run_again(pool: Any, cut_after: int) -> None:
    world = await populate(pool)

    class Cut(Exception):
        pass

    seen = 0

    def progress(step: str, counts: Any) -> None:
        nonlocal seen
        seen += 1
        if seen == cut_after:
            raise Cut(step)

    try:
        await erasure.erase_user(pool, user_id=world.victim.id, batch=1, progress=progress)
    except Cut:
        pass
    else:  # pragma: no cover - the data set takes more batches than any cut
        pytest.fail("the erasure finished before the cut")
    user = await users.get_user(pool, user_id=world.victim.id)
    assert user.deactivated_at is not None  # deactivated first: no token works meanwhile
    await erasure.erase_user(pool, user_id=world.victim.id, batch=1)
    async with pool.acquire() as conn:
        assert await rows_naming(conn, world.victim.id) == {}
    with pytest.raises(NotFound):
        await erasure.erase_user(pool, user_id=world.victim.id)


async def test_erasing_a_user_with_nothing_but_the_row(pool: Any) -> None:
    lone = await make_user(pool, "lone")
    report = await erasure.erase_user(pool, user_id=lone.id)
    assert report.deleted == {"users": 1, "user_message_counts": 1}  # made with the user
    assert report.anonymized == {}
    with pytest.raises(ValueError):
        await erasure.erase_user(pool, user_id=lone.id, batch=0)


async def session_exercise(pool: Any, settings: Any, run: Any) -> None:
    world = await populate(pool)
    await run.one("erase_user", lambda: erasure.erase_user(pool, user_id=world.victim.id, batch=2))
