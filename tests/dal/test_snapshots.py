"""Gateways of workspace snapshots: save and restore a document as given, list newest first by
keyset, search by name and query text, link to a readable conversation and to one of the
user's tasks, change, delete; bounds; another user's snapshot is not found and stays as it
was."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

import pytest
from pydantic import ValidationError

from dal.errors import InvalidInput, NotFound, TooLarge
from dal.gateways import conversations, snapshots, tasks
from dal.records.conversations import ConversationDraft
from dal.records.snapshots import Snapshot, SnapshotDraft, SnapshotPatch
from dal.records.tasks import Task, TaskDraft
from dal.records.users import User
from dal.settings import Settings
from tests.dal.conftest import make_conversation, make_user
from tests.dal.test_feedback import add_member

if TYPE_CHECKING:
    from tests.test_session_state import SessionRun

PANELS: list[dict[str, Any]] = [
    {"id": "p1", "kind": "chart", "query": "EV sales by region, 2026", "layout": {"x": 0, "w": 6}},
    {"id": "p2", "kind": "table", "query": "Top 10 charging networks", "options": [1, 2.5, None]},
    {"id": "p3", "kind": "note", "text": "no query here"},
]


async def save(db: Any, user: User, name: str = "EV market", **fields: Any) -> Snapshot:
    draft = SnapshotDraft.model_validate({"name": name, "panels": PANELS, **fields})
    return await snapshots.insert_snapshot(db, user_id=user.id, draft=draft)


async def make_task(db: Any, user: User) -> Task:
    return await tasks.insert_task(db, user_id=user.id, draft=TaskDraft(kind="research"))


async def count(db: Any) -> int:
    return int(await db.fetchval("SELECT count(*) FROM workspace_snapshots"))


async def test_a_snapshot_is_restored_as_it_was_saved(pool: Any, alice: User) -> None:
    saved = await save(pool, alice)
    assert saved.name == "EV market"
    assert saved.origin == "manual"
    assert saved.conversation_id is None
    assert saved.task_id is None
    assert saved.panels == PANELS
    assert saved.panel_count == 3
    # the panels' string queries, in order, one per line; a panel without one adds nothing
    assert saved.query_text == "EV sales by region, 2026\nTop 10 charging networks"
    restored = await snapshots.get_snapshot(pool, user_id=alice.id, snapshot_id=saved.id)
    assert restored == saved
    assert saved.id.version == 7


async def test_an_automatic_snapshot_says_so(pool: Any, alice: User) -> None:
    saved = await save(pool, alice, origin="auto")
    assert saved.origin == "auto"
    with pytest.raises(ValidationError):
        SnapshotDraft.model_validate({"name": "x", "panels": [], "origin": "robot"})


async def test_another_users_snapshot_is_not_found_and_stays_as_it_was(
    pool: Any, alice: User, bob: User
) -> None:
    saved = await save(pool, alice)
    mine = {"user_id": bob.id, "snapshot_id": saved.id}
    with pytest.raises(NotFound):
        await snapshots.get_snapshot(pool, **mine)
    with pytest.raises(NotFound):
        await snapshots.update_snapshot(pool, **mine, patch=SnapshotPatch(name="taken"))
    with pytest.raises(NotFound):
        await snapshots.delete_snapshot(pool, **mine)
    assert (await snapshots.list_snapshots(pool, user_id=bob.id)).items == []
    assert (await snapshots.list_snapshots(pool, user_id=bob.id, q="EV")).items == []
    assert await snapshots.get_snapshot(pool, user_id=alice.id, snapshot_id=saved.id) == saved


async def test_the_list_is_newest_first_in_pages_without_panels(pool: Any, alice: User) -> None:
    saved = [await save(pool, alice, f"snapshot {i}") for i in range(7)]
    await save(pool, await make_user(pool), "someone else's")
    seen: list[UUID] = []
    cursor = None
    while True:
        page = await snapshots.list_snapshots(pool, user_id=alice.id, limit=3, cursor=cursor)
        assert len(page.items) <= 3
        seen += [item.id for item in page.items]
        assert all(not hasattr(item, "panels") for item in page.items)
        assert all(item.panel_count == 3 for item in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [s.id for s in reversed(saved)]


async def test_search_finds_a_substring_of_the_name_or_a_query_in_any_case(
    pool: Any, alice: User
) -> None:
    ev = await save(pool, alice, "EV market")
    solar = await save(pool, alice, "Solar", panels=[{"query": "Panel prices in Spain"}])
    other = await save(pool, alice, "Wind", panels=[{"query": 42}, {"q": "spain"}])

    async def found(q: str) -> list[UUID]:
        page = await snapshots.list_snapshots(pool, user_id=alice.id, q=q)
        return [item.id for item in page.items]

    assert await found("market") == [ev.id]  # the name
    assert await found("CHARGING NET") == [ev.id]  # a query, any case
    assert await found("spain") == [solar.id]  # not a non-string "query", nor another key
    assert await found("in") == [other.id, solar.id, ev.id]  # short: still a substring
    assert await found("nothing like it") == []
    assert await found("") == [other.id, solar.id, ev.id]  # empty: all


async def test_search_takes_wildcards_and_backslashes_literally(pool: Any, alice: User) -> None:
    percent = await save(pool, alice, "growth 50% a_b c\\d", panels=[])
    await save(pool, alice, "growth 50 points ab cd", panels=[])
    for q in ("50%", "a_b", "c\\d", "%", "_"):
        page = await snapshots.list_snapshots(pool, user_id=alice.id, q=q)
        assert [item.id for item in page.items] == [percent.id], q


async def test_search_pages_by_keyset(pool: Any, alice: User) -> None:
    saved = [await save(pool, alice, f"match {i}") for i in range(5)]
    await save(pool, alice, "other")
    first = await snapshots.list_snapshots(pool, user_id=alice.id, q="match", limit=2)
    second = await snapshots.list_snapshots(
        pool, user_id=alice.id, q="match", limit=2, cursor=first.next_cursor
    )
    third = await snapshots.list_snapshots(
        pool, user_id=alice.id, q="match", limit=2, cursor=second.next_cursor
    )
    ids = [item.id for page in (first, second, third) for item in page.items]
    assert ids == [s.id for s in reversed(saved)]
    assert third.next_cursor is None


async def test_a_snapshot_links_only_a_conversation_its_user_may_read(
    pool: Any, alice: User, bob: User
) -> None:
    conversation = await make_conversation(pool, alice)
    linked = await save(pool, alice, conversation_id=conversation.id)
    assert linked.conversation_id == conversation.id
    before = await count(pool)
    with pytest.raises(NotFound, match="conversation"):
        await save(pool, bob, conversation_id=conversation.id)
    with pytest.raises(NotFound, match="conversation"):
        await save(pool, alice, conversation_id=UUID(int=1))
    assert await count(pool) == before
    # a member may link it
    await add_member(pool, conversation, bob)
    theirs = await save(pool, bob, "bob's", conversation_id=conversation.id)
    page = await snapshots.list_snapshots(pool, user_id=alice.id, conversation_id=conversation.id)
    assert [item.id for item in page.items] == [linked.id]  # bob's stays bob's
    page = await snapshots.list_snapshots(pool, user_id=bob.id, conversation_id=conversation.id)
    assert [item.id for item in page.items] == [theirs.id]


async def test_the_list_of_a_conversation_pages_and_searches(pool: Any, alice: User) -> None:
    conversation = await make_conversation(pool, alice)
    saved = [
        await save(pool, alice, f"linked {i}", conversation_id=conversation.id) for i in range(3)
    ]
    await save(pool, alice, "linked elsewhere")
    first = await snapshots.list_snapshots(
        pool, user_id=alice.id, conversation_id=conversation.id, limit=2
    )
    second = await snapshots.list_snapshots(
        pool, user_id=alice.id, conversation_id=conversation.id, cursor=first.next_cursor
    )
    ids = [item.id for page in (first, second) for item in page.items]
    assert ids == [s.id for s in reversed(saved)]
    assert second.next_cursor is None
    page = await snapshots.list_snapshots(
        pool, user_id=alice.id, conversation_id=conversation.id, q="KED 1"
    )
    assert [item.id for item in page.items] == [saved[1].id]


async def test_deleting_the_conversation_keeps_its_snapshots_unlinked(
    pool: Any, alice: User
) -> None:
    conversation = await make_conversation(pool, alice)
    saved = await save(pool, alice, conversation_id=conversation.id)
    await conversations.delete_conversation(pool, user_id=alice.id, conversation_id=conversation.id)
    kept = await snapshots.get_snapshot(pool, user_id=alice.id, snapshot_id=saved.id)
    assert kept.conversation_id is None
    assert kept.panels == PANELS


async def test_a_snapshot_links_only_a_task_of_its_users(pool: Any, alice: User, bob: User) -> None:
    task = await make_task(pool, alice)
    linked = await save(pool, alice, task_id=task.id)
    assert linked.task_id == task.id
    assert await snapshots.get_snapshot(pool, user_id=alice.id, snapshot_id=linked.id) == linked
    before = await count(pool)
    with pytest.raises(NotFound, match="task"):
        await save(pool, bob, task_id=task.id)  # another user's task
    with pytest.raises(NotFound, match="task"):
        await save(pool, alice, task_id=UUID(int=1))  # no such task
    conversation = await make_conversation(pool, bob)
    with pytest.raises(NotFound, match="conversation"):  # a good task, a bad conversation
        await save(pool, alice, task_id=task.id, conversation_id=conversation.id)
    assert await count(pool) == before
    both = await make_conversation(pool, alice)
    linked_both = await save(pool, alice, task_id=task.id, conversation_id=both.id)
    assert (linked_both.task_id, linked_both.conversation_id) == (task.id, both.id)


async def test_the_list_of_a_task_pages_searches_and_filters_by_conversation(
    pool: Any, alice: User, bob: User
) -> None:
    task = await make_task(pool, alice)
    conversation = await make_conversation(pool, alice)
    saved = [await save(pool, alice, f"step {i}", task_id=task.id) for i in range(3)]
    also = await save(pool, alice, "step 3", task_id=task.id, conversation_id=conversation.id)
    await save(pool, alice, "step elsewhere", task_id=(await make_task(pool, alice)).id)
    await save(pool, alice, "step 0 unlinked")
    await save(pool, alice, "step 0 of the conversation only", conversation_id=conversation.id)
    mine = {"user_id": alice.id, "task_id": task.id}
    first = await snapshots.list_snapshots(pool, **mine, limit=2)
    second = await snapshots.list_snapshots(pool, **mine, limit=2, cursor=first.next_cursor)
    ids = [item.id for page in (first, second) for item in page.items]
    assert ids == [also.id, *(s.id for s in reversed(saved))]
    assert second.next_cursor is None
    assert all(item.task_id == task.id for item in first.items)
    page = await snapshots.list_snapshots(pool, **mine, q="EP 1")
    assert [item.id for item in page.items] == [saved[1].id]
    page = await snapshots.list_snapshots(pool, **mine, conversation_id=conversation.id)
    assert [item.id for item in page.items] == [also.id]
    page = await snapshots.list_snapshots(pool, **mine, conversation_id=conversation.id, q="step 0")
    assert page.items == []
    # another user sees none of them, through their own task filter or alice's
    page = await snapshots.list_snapshots(pool, user_id=bob.id, task_id=task.id)
    assert page.items == []


async def test_deleting_the_task_keeps_its_snapshots_unlinked(pool: Any, alice: User) -> None:
    task = await make_task(pool, alice)
    saved = await save(pool, alice, task_id=task.id)
    await pool.execute("DELETE FROM tasks WHERE id = $1", task.id)  # as an operator would
    kept = await snapshots.get_snapshot(pool, user_id=alice.id, snapshot_id=saved.id)
    assert kept.task_id is None
    assert kept.panels == PANELS


async def test_a_patch_links_and_unlinks_a_task(pool: Any, alice: User, bob: User) -> None:
    task = await make_task(pool, alice)
    saved = await save(pool, alice)
    ids = {"user_id": alice.id, "snapshot_id": saved.id}
    linked = await snapshots.update_snapshot(pool, **ids, patch=SnapshotPatch(task_id=task.id))
    assert linked.task_id == task.id
    kept = await snapshots.update_snapshot(pool, **ids, patch=SnapshotPatch(name="Again"))
    assert kept.task_id == task.id  # absent keeps the link
    theirs = await make_task(pool, bob)
    for bad in (theirs.id, UUID(int=1)):
        with pytest.raises(NotFound, match="task"):
            await snapshots.update_snapshot(
                pool, **ids, patch=SnapshotPatch(name="changed", task_id=bad)
            )
    assert await snapshots.get_snapshot(pool, **ids) == kept  # nothing changed
    unlinked = await snapshots.update_snapshot(
        pool, **ids, patch=SnapshotPatch.model_validate({"task_id": None})
    )
    assert (unlinked.task_id, unlinked.name) == (None, "Again")
    with pytest.raises(NotFound, match="snapshot"):  # bob's own task, alice's snapshot
        await snapshots.update_snapshot(
            pool,
            user_id=bob.id,
            snapshot_id=saved.id,
            patch=SnapshotPatch(task_id=theirs.id),
        )


async def test_deleting_the_user_deletes_their_snapshots(pool: Any, alice: User) -> None:
    await save(pool, alice)
    await pool.execute("DELETE FROM users WHERE id = $1", alice.id)  # as an operator would
    assert await count(pool) == 0


async def test_a_patch_renames_replaces_panels_and_relinks(pool: Any, alice: User) -> None:
    conversation = await make_conversation(pool, alice)
    saved = await save(pool, alice)
    ids = {"user_id": alice.id, "snapshot_id": saved.id}
    renamed = await snapshots.update_snapshot(pool, **ids, patch=SnapshotPatch(name="Renamed"))
    assert (renamed.name, renamed.panels, renamed.created_at) == (
        "Renamed",
        PANELS,
        saved.created_at,
    )
    assert renamed.updated_at > saved.updated_at
    replaced = await snapshots.update_snapshot(
        pool, **ids, patch=SnapshotPatch(panels=[{"query": "new one"}])
    )
    assert (replaced.name, replaced.panel_count, replaced.query_text) == ("Renamed", 1, "new one")
    linked = await snapshots.update_snapshot(
        pool, **ids, patch=SnapshotPatch(conversation_id=conversation.id)
    )
    assert linked.conversation_id == conversation.id
    # absent keeps the link; null removes it
    kept = await snapshots.update_snapshot(pool, **ids, patch=SnapshotPatch(name="Again"))
    assert kept.conversation_id == conversation.id
    unlinked = await snapshots.update_snapshot(
        pool, **ids, patch=SnapshotPatch.model_validate({"conversation_id": None})
    )
    assert unlinked.conversation_id is None
    assert unlinked.name == "Again"


async def test_a_patch_may_not_link_a_conversation_the_user_may_not_read(
    pool: Any, alice: User, bob: User
) -> None:
    theirs = await make_conversation(pool, bob)
    saved = await save(pool, alice, "unchanged")
    with pytest.raises(NotFound, match="conversation"):
        await snapshots.update_snapshot(
            pool,
            user_id=alice.id,
            snapshot_id=saved.id,
            patch=SnapshotPatch(name="changed", conversation_id=theirs.id),
        )
    assert await snapshots.get_snapshot(pool, user_id=alice.id, snapshot_id=saved.id) == saved


def test_a_patch_must_change_something_and_cannot_null_name_or_panels() -> None:
    with pytest.raises(ValidationError, match="at least one"):
        SnapshotPatch.model_validate({})
    for field in ("name", "panels"):
        with pytest.raises(ValidationError, match="cannot be null"):
            SnapshotPatch.model_validate({field: None})


async def test_delete(pool: Any, alice: User) -> None:
    saved = await save(pool, alice)
    await snapshots.delete_snapshot(pool, user_id=alice.id, snapshot_id=saved.id)
    with pytest.raises(NotFound):
        await snapshots.get_snapshot(pool, user_id=alice.id, snapshot_id=saved.id)
    with pytest.raises(NotFound):
        await snapshots.delete_snapshot(pool, user_id=alice.id, snapshot_id=saved.id)


async def test_panels_over_the_byte_bound_are_refused_before_anything_is_written(
    pool: Any, alice: User
) -> None:
    big = [{"query": "x" * 1000}]
    draft = SnapshotDraft(name="big", panels=big)
    with pytest.raises(TooLarge) as refused:
        await snapshots.insert_snapshot(pool, user_id=alice.id, draft=draft, max_bytes=1000)
    assert refused.value.code == "snapshot_too_large"
    assert await count(pool) == 0
    saved = await snapshots.insert_snapshot(pool, user_id=alice.id, draft=draft, max_bytes=1015)
    with pytest.raises(TooLarge):
        await snapshots.update_snapshot(
            pool,
            user_id=alice.id,
            snapshot_id=saved.id,
            patch=SnapshotPatch(panels=big * 2),
            max_bytes=1015,
        )
    assert await snapshots.get_snapshot(pool, user_id=alice.id, snapshot_id=saved.id) == saved


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"name": ""}, "at least 1"),
        ({"name": "x" * 201}, "at most 200"),
        ({"name": "a\x00b"}, "pattern"),
        ({"panels": {"query": "not a list"}}, "list"),
        ({"panels": ["not an object"]}, "dictionary"),
        ({"panels": [{"n": 2**64}]}, "integer out of range"),
        ({"panels": [{"deep": [[[[]]]]}]}, "nested deeper"),
        ({"extra": 1}, "Extra inputs"),
    ],
)
def test_a_draft_is_checked_as_json_values_are(fields: dict[str, Any], why: str) -> None:
    given = {"name": "ok", "panels": [], **fields}
    with pytest.raises(ValidationError, match=why):
        SnapshotDraft.model_validate(given, context={"max_json_depth": 4})


async def test_list_bounds(pool: Any, alice: User) -> None:
    for bad in ({"limit": 0}, {"limit": 201}, {"cursor": "x"}, {"q": "x" * 1001}, {"q": "\x00"}):
        with pytest.raises(InvalidInput):
            await snapshots.list_snapshots(pool, user_id=alice.id, **bad)


async def session_exercise(pool: Any, settings: Settings, run: SessionRun) -> None:
    """Workspace snapshots, for tests/test_session_state.py."""
    user = await run.one("make_user", lambda: make_user(pool))
    conversation = await run.one(
        "insert_conversation",
        lambda: conversations.insert_conversation(pool, user_id=user.id, draft=ConversationDraft()),
    )
    saved = await run.one(
        "insert_snapshot", lambda: save(pool, user, conversation_id=conversation.id)
    )
    ids = {"user_id": user.id, "snapshot_id": saved.id}
    await run(
        [
            ("insert_snapshot unreadable", lambda: save(pool, user, conversation_id=UUID(int=1))),
            ("get_snapshot", lambda: snapshots.get_snapshot(pool, **ids)),
            (
                "update_snapshot",
                lambda: snapshots.update_snapshot(pool, **ids, patch=SnapshotPatch(name="n")),
            ),
            (
                "update_snapshot unreadable",
                lambda: snapshots.update_snapshot(
                    pool, **ids, patch=SnapshotPatch(conversation_id=UUID(int=1))
                ),
            ),
            ("list_snapshots", lambda: snapshots.list_snapshots(pool, user_id=user.id, limit=1)),
            (
                "list_snapshots matching",
                lambda: snapshots.list_snapshots(pool, user_id=user.id, q="EV"),
            ),
            (
                "list_snapshots of task",
                lambda: snapshots.list_snapshots(pool, user_id=user.id, task_id=UUID(int=1)),
            ),
            (
                "list_snapshots of conversation",
                lambda: snapshots.list_snapshots(
                    pool, user_id=user.id, conversation_id=conversation.id, q="ev"
                ),
            ),
            ("delete_snapshot", lambda: snapshots.delete_snapshot(pool, **ids)),
            ("delete_snapshot missing", lambda: snapshots.delete_snapshot(pool, **ids)),
        ]
    )
