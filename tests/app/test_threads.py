"""The caller's agent threads over HTTP: list, state as JSON (LangGraph's values too), JSON
state writes, history, one checkpoint, copy, prune, delete; another user's thread is 404."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import ChannelVersions

from dal.database import open_pool
from dal.langgraph import AsyncpgSaver
from dal.records.retention import RetentionPolicy, RetentionReport
from dal.settings import Settings
from dal.usecases.retention import run_retention
from tests.app.conftest import (
    MISSING_ID,
    Caller,
    Json,
    TestClient,
    assert_error,
    count_rows,
    get_conversation,
    make_conversation,
    ts,
)

# --- helpers ------------------------------------------------------------------------------


def url(thread_id: str, *rest: str) -> str:
    return "/".join(["/v1/threads", quote(thread_id, safe=""), *rest])


def put_state(
    client: TestClient, caller: Caller, thread_id: str, values: Json, **fields: Any
) -> Json:
    """PUT JSON state; 201 expected. Returns {"thread_id", "checkpoint_ns", "checkpoint_id"}."""
    response = client.put(
        url(thread_id, "state"), json={"values": values, **fields}, headers=caller.headers
    )
    assert response.status_code == 201, response.text
    saved: Json = response.json()
    return saved


def get_state(client: TestClient, caller: Caller, thread_id: str, **params: Any) -> Json:
    response = client.get(url(thread_id, "state"), params=params, headers=caller.headers)
    assert response.status_code == 200, response.text
    state: Json = response.json()
    return state


def history(client: TestClient, caller: Caller, thread_id: str, **params: Any) -> list[Json]:
    response = client.get(url(thread_id, "history"), params=params, headers=caller.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"items"}
    items: list[Json] = body["items"]
    return items


def thread_ids(client: TestClient, caller: Caller, **params: Any) -> list[str]:
    response = client.get("/v1/threads", params=params, headers=caller.headers)
    assert response.status_code == 200, response.text
    return [t["thread_id"] for t in response.json()["items"]]


def with_saver(settings: Settings, write: Callable[[AsyncpgSaver], Awaitable[Any]]) -> Any:
    """Run ``write`` with a LangGraph saver on its own pool (the app's runs in its own loop)."""

    async def main() -> Any:
        pool = await open_pool(settings)
        try:
            return await write(AsyncpgSaver(pool))
        finally:
            await pool.close()

    return asyncio.run(main())


async def saver_put(
    saver: AsyncpgSaver,
    thread_id: str,
    values: dict[str, Any],
    *,
    user_id: str | None,
    checkpoint_id: str = "1f0c0000-0000-6000-8000-000000000001",
    writes: list[tuple[str, Any]] | None = None,
) -> str:
    """Save a checkpoint (and a task's pending writes) as a LangGraph graph would."""
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if user_id is not None:
        configurable["user_id"] = user_id
    versions: ChannelVersions = {c: saver.get_next_version(None, None) for c in values}
    saved = await saver.aput(
        {"configurable": configurable},
        {
            "v": 4,
            "id": checkpoint_id,
            "ts": "2026-11-23T10:00:00+00:00",
            "channel_values": values,
            "channel_versions": versions,
            "versions_seen": {},
            "updated_channels": sorted(values),
        },
        {"source": "loop", "step": 1, "parents": {}},
        versions,
    )
    if writes:
        await saver.aput_writes(saved, writes, task_id="task-1")
    return str(saved["configurable"]["checkpoint_id"])


def count_checkpoints(settings: Settings, thread_id: str) -> int:
    return count_rows(settings, "SELECT count(*) FROM checkpoints WHERE thread_id = %s", thread_id)


# --- PUT state and GET state --------------------------------------------------------------


def test_put_state_new_thread_is_201_and_get_state_returns_it(
    client: TestClient, alice: Caller
) -> None:
    values = {"todo": [{"task": "write", "done": False}], "count": 2, "note": "日本", "x": None}

    saved = put_state(client, alice, "t-1", values, metadata={"agent": "planner"})

    assert set(saved) == {"thread_id", "checkpoint_ns", "checkpoint_id"}
    assert (saved["thread_id"], saved["checkpoint_ns"]) == ("t-1", "")
    state = get_state(client, alice, "t-1")
    assert state["values"] == values
    assert state["checkpoint_id"] == saved["checkpoint_id"]
    assert state["thread_id"] == "t-1"
    assert state["checkpoint_ns"] == ""
    assert state["parent_checkpoint_id"] is None
    assert state["metadata"] == {"agent": "planner", "source": "update", "step": 0, "parents": {}}
    assert state["pending_writes"] == []
    assert abs((ts(state["created_at"]) - datetime.now(UTC)).total_seconds()) < 60
    thread = client.get(url("t-1"), headers=alice.headers).json()
    assert (thread["user_id"], thread["conversation_id"], thread["metadata"]) == (
        alice.id,
        None,
        {},
    )


def test_put_state_in_a_namespace_leaves_the_root_alone(client: TestClient, alice: Caller) -> None:
    put_state(client, alice, "t-1", {"n": 1})
    put_state(client, alice, "t-1", {"n": 2}, checkpoint_ns="sub:1")

    assert get_state(client, alice, "t-1")["values"] == {"n": 1}
    sub = get_state(client, alice, "t-1", checkpoint_ns="sub:1")
    assert (sub["checkpoint_ns"], sub["values"]) == ("sub:1", {"n": 2})
    assert [s["values"] for s in history(client, alice, "t-1", checkpoint_ns="sub:1")] == [{"n": 2}]


def test_put_state_thread_id_any_text_round_trips(client: TestClient, alice: Caller) -> None:
    thread_id = "user 42: trip to 東京? #1 & more"
    put_state(client, alice, thread_id, {"n": 1})

    assert get_state(client, alice, thread_id)["thread_id"] == thread_id
    assert thread_ids(client, alice) == [thread_id]


def test_put_state_conversation_link_is_seen_from_both_sides(
    client: TestClient, alice: Caller
) -> None:
    conversation = make_conversation(client, alice)

    put_state(client, alice, "t-1", {"n": 1}, conversation_id=conversation["id"])

    linked = get_conversation(client, alice, conversation["id"])
    assert linked["thread_id"] == "t-1"
    assert linked["version"] == conversation["version"] + 1  # its ETag changes with it
    put_state(client, alice, "t-1", {"n": 2})  # no conversation_id: the link stays
    assert client.get(url("t-1"), headers=alice.headers).json()["conversation_id"] == linked["id"]


def test_conversation_and_thread_cannot_disagree(client: TestClient, alice: Caller) -> None:
    first = make_conversation(client, alice, thread_id="t-1")
    put_state(client, alice, "t-1", {"n": 1})
    put_state(client, alice, "t-2", {"n": 1})
    assert client.get(url("t-1"), headers=alice.headers).json()["conversation_id"] == first["id"]

    # The conversation names another thread: the first one serves no conversation any more.
    moved = client.patch(
        f"/v1/conversations/{first['id']}", json={"thread_id": "t-2"}, headers=alice.headers
    )
    assert moved.status_code == 200, moved.text
    assert client.get(url("t-1"), headers=alice.headers).json()["conversation_id"] is None
    assert client.get(url("t-2"), headers=alice.headers).json()["conversation_id"] == first["id"]
    [listed] = [
        t
        for t in client.get("/v1/threads", headers=alice.headers).json()["items"]
        if t["thread_id"] == "t-2"
    ]
    assert listed["conversation_id"] == first["id"]

    # A thread serves one conversation: naming it from a second one is a conflict.
    second = make_conversation(client, alice)
    for response in (
        client.patch(
            f"/v1/conversations/{second['id']}", json={"thread_id": "t-2"}, headers=alice.headers
        ),
        client.post("/v1/conversations", json={"thread_id": "t-2"}, headers=alice.headers),
        client.put(
            url("t-2", "state"),
            json={"values": {"n": 9}, "conversation_id": second["id"]},
            headers=alice.headers,
        ),
    ):
        assert "another conversation" in assert_error(response, 409, "conflict")["message"]
    assert get_conversation(client, alice, second["id"])["thread_id"] is None
    assert get_state(client, alice, "t-2")["values"] == {"n": 1}

    # Deleting the conversation unlinks its thread; a copy serves no conversation.
    copied = client.post(
        url("t-2", "copy"), json={"target_thread_id": "t-3"}, headers=alice.headers
    )
    assert copied.status_code == 201, copied.text
    assert client.get(url("t-3"), headers=alice.headers).json()["conversation_id"] is None
    assert (
        client.delete(f"/v1/conversations/{first['id']}", headers=alice.headers).status_code == 204
    )
    assert client.get(url("t-2"), headers=alice.headers).json()["conversation_id"] is None


def test_conversation_thread_link_is_per_user(
    client: TestClient, alice: Caller, bob: Caller
) -> None:
    mine = make_conversation(client, alice, thread_id="main")
    theirs = make_conversation(client, bob, thread_id="main")  # no conflict: bob's own "main"
    put_state(client, alice, "main", {"n": 1})
    put_state(client, bob, "main", {"n": 2})

    assert client.get(url("main"), headers=alice.headers).json()["conversation_id"] == mine["id"]
    assert client.get(url("main"), headers=bob.headers).json()["conversation_id"] == theirs["id"]


def test_put_state_with_another_users_conversation_is_404_and_writes_nothing(
    client: TestClient, alice: Caller, bob: Caller, settings: Settings
) -> None:
    theirs = make_conversation(client, bob)

    response = client.put(
        url("t-1", "state"),
        json={"values": {"n": 1}, "conversation_id": theirs["id"]},
        headers=alice.headers,
    )

    assert_error(response, 404, "not_found")
    assert count_rows(settings, "SELECT count(*) FROM threads") == 0


def test_put_state_invalid_body_is_4xx_and_writes_nothing(
    client: TestClient, alice: Caller, settings: Settings
) -> None:
    bodies: list[tuple[Any, int, str]] = [
        ({"values": [1, 2]}, 422, "values"),
        ({"values": "x"}, 422, "values"),
        ({"values": None}, 422, "values"),
        ({}, 422, "values"),
        ([{"values": {}}], 422, ""),
        ({"values": {"n": 1}, "metadata": [1]}, 422, "metadata"),
        ({"values": {"n": 1}, "metadata": {"step": 5}}, 422, ""),
        ({"values": {"n": 1}, "extra": 1}, 422, "extra"),
        ({"values": {"": 1}}, 422, "values"),
        ({"values": {"x" * 201: 1}}, 422, "values"),
        ({"values": {"n": 1}, "checkpoint_ns": "x" * 201}, 422, "checkpoint_ns"),
        ({"values": {"n": 1}, "conversation_id": "nope"}, 422, "conversation_id"),
    ]
    for body, status, field in bodies:
        response = client.put(url("t-1", "state"), json=body, headers=alice.headers)

        error = assert_error(response, status)
        if field:
            assert field in {d["field"].split(".")[0] for d in error["details"]}, body
    texts = [
        b'{"values": {"n": "a\\u0000b"}}',
        b'{"values": {"n": NaN}}',
        b'{"values": {"n": [123456789012345678901234567890]}}',
        b'{"values": {"n": 123456789012345678901234567890}}',
    ]
    for text in texts:
        response = client.put(
            url("t-1", "state"),
            content=text,
            headers={**alice.headers, "content-type": "application/json"},
        )
        assert_error(response, 422)
    assert_error(
        client.put(url("t-1", "state"), content=b"{", headers=alice.headers), 415
    )  # no content type
    assert count_rows(settings, "SELECT count(*) FROM threads") == 0


def test_put_state_thread_id_over_500_bytes_is_422(client: TestClient, alice: Caller) -> None:
    response = client.put(url("x" * 501, "state"), json={"values": {}}, headers=alice.headers)

    assert "500 bytes" in assert_error(response, 422, "invalid_input")["message"]


def test_put_state_without_token_is_401(client: TestClient) -> None:
    assert_error(client.put(url("t-1", "state"), json={"values": {}}), 401, "unauthorized")
    assert_error(client.get("/v1/threads"), 401, "unauthorized")


# --- a thread LangGraph wrote ---------------------------------------------------------------


def test_get_state_of_langgraph_thread_decodes_messages_and_writes_to_json(
    client: TestClient, alice: Caller, settings: Settings
) -> None:
    checkpoint_id = with_saver(
        settings,
        lambda saver: saver_put(
            saver,
            "lg",
            {
                "messages": [HumanMessage("What's the weather?", id="m1")],
                "asked_at": datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
                "seen": {"b", "a"},
                "step_count": 1,
            },
            user_id=alice.id,
            writes=[("messages", [AIMessage("Sunny.", id="m2")])],
        ),
    )

    state = get_state(client, alice, "lg")

    assert state["checkpoint_id"] == checkpoint_id
    assert state["created_at"] == "2026-11-23T10:00:00Z"
    [message] = state["values"]["messages"]
    assert (message["type"], message["content"], message["id"]) == (
        "human",
        "What's the weather?",
        "m1",
    )
    assert state["values"]["asked_at"] == "2026-11-23T09:00:00+00:00"
    assert state["values"]["seen"] == ["a", "b"]
    assert state["values"]["step_count"] == 1
    [write] = state["pending_writes"]
    assert (write["task_id"], write["channel"]) == ("task-1", "messages")
    [reply] = write["value"]
    assert (reply["type"], reply["content"], reply["id"]) == ("ai", "Sunny.", "m2")
    assert thread_ids(client, alice) == ["lg"]
    assert [s["checkpoint_id"] for s in history(client, alice, "lg")] == [checkpoint_id]
    one = client.get(url("lg", "checkpoints", checkpoint_id), headers=alice.headers)
    assert one.status_code == 200 and one.json() == state


# --- list ---------------------------------------------------------------------------------


def test_list_threads_shows_only_the_callers_by_pages(
    client: TestClient, alice: Caller, bob: Caller
) -> None:
    for i in range(3):
        put_state(client, alice, f"a-{i}", {"n": i})
    put_state(client, bob, "b-0", {"n": 0})

    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = client.get("/v1/threads", params=params, headers=alice.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        pages.append([t["thread_id"] for t in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == [["a-2", "a-1"], ["a-0"]]
    assert thread_ids(client, bob) == ["b-0"]
    [thread] = client.get("/v1/threads", params={"limit": 1}, headers=bob.headers).json()["items"]
    assert set(thread) == {
        "thread_id",
        "user_id",
        "conversation_id",
        "metadata",
        "created_at",
        "updated_at",
    }
    assert thread["user_id"] == bob.id


def test_list_threads_bad_limit_or_cursor_is_422(client: TestClient, alice: Caller) -> None:
    for params in ({"limit": 0}, {"limit": 201}, {"limit": "x"}, {"cursor": "bogus"}):
        response = client.get("/v1/threads", params=params, headers=alice.headers)
        assert_error(response, 422, "invalid_input")


# --- history and one checkpoint -----------------------------------------------------------


def test_history_lists_newest_first_pages_with_before_and_filters_by_metadata(
    client: TestClient, alice: Caller
) -> None:
    ids = [
        put_state(client, alice, "t-1", {"n": i}, metadata={"kind": "even" if i % 2 else "odd"})[
            "checkpoint_id"
        ]
        for i in range(5)
    ]

    everything = history(client, alice, "t-1")
    assert [s["checkpoint_id"] for s in everything] == ids[::-1]
    assert everything[0] == get_state(client, alice, "t-1")
    assert [s["values"]["n"] for s in history(client, alice, "t-1", limit=2)] == [4, 3]
    older = history(client, alice, "t-1", limit=2, before=ids[3])
    assert [s["values"]["n"] for s in older] == [2, 1]
    odd = history(client, alice, "t-1", metadata=json.dumps({"kind": "odd"}))
    assert [s["values"]["n"] for s in odd] == [4, 2, 0]
    step = history(client, alice, "t-1", metadata='{"source": "update", "step": 3}')
    assert [s["values"]["n"] for s in step] == [3]
    assert history(client, alice, "t-1", metadata='{"kind": "none"}') == []
    assert history(client, alice, "t-1", checkpoint_ns="other") == []


def test_history_of_thread_without_checkpoints_is_empty(client: TestClient, alice: Caller) -> None:
    put_state(client, alice, "t-1", {"n": 1})
    client.post(url("t-1", "prune"), json={"strategy": "delete"}, headers=alice.headers)

    assert history(client, alice, "t-1") == []
    assert_error(client.get(url("t-1", "state"), headers=alice.headers), 404, "not_found")


def test_history_bad_parameters_are_422(client: TestClient, alice: Caller) -> None:
    put_state(client, alice, "t-1", {"n": 1})
    cases: list[tuple[dict[str, Any], str]] = [
        ({"metadata": "{not json"}, "metadata must be a JSON object"),
        ({"metadata": "[1, 2]"}, "metadata must be a JSON object"),
        ({"metadata": '"x"'}, "metadata must be a JSON object"),
        ({"metadata": "NaN"}, "metadata must be a JSON object"),
        ({"metadata": '{"a": "\\u0000"}'}, ""),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "ten"}, "limit"),
    ]
    for params, message in cases:
        response = client.get(url("t-1", "history"), params=params, headers=alice.headers)
        error = assert_error(response, 422, "invalid_input")
        assert message in error["message"], (params, error)


def test_get_checkpoint_returns_that_checkpoint(client: TestClient, alice: Caller) -> None:
    first = put_state(client, alice, "t-1", {"n": 1})["checkpoint_id"]
    put_state(client, alice, "t-1", {"n": 2})

    response = client.get(url("t-1", "checkpoints", first), headers=alice.headers)

    assert response.status_code == 200, response.text
    assert response.json() == history(client, alice, "t-1")[1]
    assert response.json()["values"] == {"n": 1}


def test_get_checkpoint_unknown_id_or_namespace_is_404(client: TestClient, alice: Caller) -> None:
    first = put_state(client, alice, "t-1", {"n": 1})["checkpoint_id"]

    for path, params in (
        (url("t-1", "checkpoints", "no-such-checkpoint"), {}),
        (url("t-1", "checkpoints", MISSING_ID), {}),
        (url("t-1", "checkpoints", first), {"checkpoint_ns": "sub"}),
    ):
        response = client.get(path, params=params, headers=alice.headers)
        assert_error(response, 404, "not_found")


# --- copy, prune, delete --------------------------------------------------------------------


def test_copy_thread_is_201_and_the_copy_is_the_callers(
    client: TestClient, alice: Caller, settings: Settings
) -> None:
    for i in range(2):
        put_state(client, alice, "src", {"items": [i]})

    response = client.post(
        url("src", "copy"), json={"target_thread_id": "dst"}, headers=alice.headers
    )

    assert response.status_code == 201, response.text
    assert response.json() == {"thread_id": "dst", "copied": 2}
    assert sorted(thread_ids(client, alice)) == ["dst", "src"]


def test_copy_thread_latest_only_copies_the_newest_checkpoint(
    client: TestClient, alice: Caller
) -> None:
    for i in range(2):
        put_state(client, alice, "src", {"items": [i]})

    response = client.post(
        url("src", "copy"),
        json={"target_thread_id": "dst", "latest_only": True},
        headers=alice.headers,
    )

    assert response.status_code == 201, response.text
    assert response.json() == {"thread_id": "dst", "copied": 1}


def test_copy_thread_to_an_existing_thread_of_the_callers_is_409(
    client: TestClient, alice: Caller, bob: Caller, settings: Settings
) -> None:
    put_state(client, alice, "src", {"n": 1})
    put_state(client, alice, "mine", {"n": 2})
    put_state(client, bob, "theirs", {"n": 3})

    response = client.post(
        url("src", "copy"), json={"target_thread_id": "mine"}, headers=alice.headers
    )
    assert_error(response, 409, "conflict")
    assert count_rows(settings, "SELECT count(*) FROM checkpoints") == 3

    # Bob's thread id is no obstacle (nor a way to learn it exists): alice gets her own.
    response = client.post(
        url("src", "copy"), json={"target_thread_id": "theirs"}, headers=alice.headers
    )
    assert response.status_code == 201, response.text
    assert [s["values"] for s in history(client, alice, "theirs")] == [{"n": 1}]
    assert [s["values"] for s in history(client, bob, "theirs")] == [{"n": 3}]


def test_copy_thread_bad_body_is_422(client: TestClient, alice: Caller) -> None:
    put_state(client, alice, "src", {"n": 1})
    for body in (
        {},
        {"target_thread_id": ""},
        {"target_thread_id": 5},
        {"target_thread_id": "x" * 501},
    ):
        response = client.post(url("src", "copy"), json=body, headers=alice.headers)
        assert_error(response, 422, "validation_error")


def test_prune_thread_keep_latest_and_delete(client: TestClient, alice: Caller) -> None:
    for i in range(2):
        put_state(client, alice, "t-1", {"items": [i]})

    response = client.post(
        url("t-1", "prune"), json={"strategy": "keep_latest"}, headers=alice.headers
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"deleted": 1}

    response = client.post(url("t-1", "prune"), json={"strategy": "delete"}, headers=alice.headers)

    assert response.status_code == 200, response.text
    assert response.json() == {"deleted": 1}


def test_prune_thread_bad_strategy_is_422_and_prunes_nothing(
    client: TestClient, alice: Caller, settings: Settings
) -> None:
    put_state(client, alice, "t-1", {"n": 1})
    put_state(client, alice, "t-1", {"n": 2})

    for body in ({"strategy": "all"}, {"strategy": None}, {}, {"strategy": "delete", "x": 1}):
        response = client.post(url("t-1", "prune"), json=body, headers=alice.headers)
        assert_error(response, 422, "validation_error")

    assert count_checkpoints(settings, "t-1") == 2


def test_delete_thread_is_204_then_404(client: TestClient, alice: Caller) -> None:
    put_state(client, alice, "t-1", {"items": [1]})

    response = client.delete(url("t-1"), headers=alice.headers)

    assert response.status_code == 204
    assert response.content == b""
    assert thread_ids(client, alice) == []
    assert_error(client.get(url("t-1", "state"), headers=alice.headers), 404)
    assert_error(client.delete(url("t-1"), headers=alice.headers), 404, "not_found")


# --- metadata ---------------------------------------------------------------------------------


def test_patch_thread_replaces_its_metadata_and_is_activity(
    client: TestClient, alice: Caller, settings: Settings
) -> None:
    put_state(client, alice, "t-1", {"n": 1})
    before = client.get(url("t-1"), headers=alice.headers).json()
    assert before["metadata"] == {}
    override = {"retention": {"ttl_days": 90, "keep_checkpoints": None}, "label": "kept"}
    response = client.patch(url("t-1"), json={"metadata": override}, headers=alice.headers)
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["metadata"] == override
    assert patched["thread_id"] == "t-1" and patched["created_at"] == before["created_at"]
    assert patched["updated_at"] >= before["updated_at"]
    assert client.get(url("t-1"), headers=alice.headers).json() == patched
    # Replaced whole; {} empties it. The checkpoints are untouched.
    response = client.patch(url("t-1"), json={"metadata": {}}, headers=alice.headers)
    assert response.status_code == 200 and response.json()["metadata"] == {}
    assert get_state(client, alice, "t-1")["values"] == {"n": 1}
    assert count_rows(settings, "SELECT count(*) FROM checkpoints") == 1


def test_a_retention_override_set_over_http_is_what_a_run_honours(
    client: TestClient, alice: Caller, settings: Settings
) -> None:
    for n in range(4):
        put_state(client, alice, "exempt", {"n": n})
        put_state(client, alice, "trimmed", {"n": n})
        put_state(client, alice, "longer", {"n": n})
    for thread_id, retention in (
        ("exempt", {"keep_checkpoints": None}),
        ("longer", {"keep_checkpoints": 3}),
    ):
        response = client.patch(
            url(thread_id), json={"metadata": {"retention": retention}}, headers=alice.headers
        )
        assert response.status_code == 200, response.text

    async def run() -> RetentionReport:
        pool = await open_pool(settings)
        try:
            return await run_retention(pool, RetentionPolicy(keep_checkpoints=1), pause=0)
        finally:
            await pool.close()

    report = asyncio.run(run())
    assert report.checkpoints == 3 + 1
    assert len(history(client, alice, "exempt")) == 4
    assert len(history(client, alice, "longer")) == 3
    assert [s["values"] for s in history(client, alice, "trimmed")] == [{"n": 3}]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"metadata": None},
        {"metadata": []},
        {"metadata": "x"},
        {"metadata": {}, "other": 1},
        {"metadata": {"a\u0000": 1}},
    ],
    ids=["empty", "null", "list", "text", "extra", "nul"],
)
def test_patch_thread_bad_body_is_422_and_changes_nothing(
    client: TestClient, alice: Caller, body: Json
) -> None:
    put_state(client, alice, "t-1", {"n": 1})
    client.patch(url("t-1"), json={"metadata": {"keep": 1}}, headers=alice.headers)
    before = client.get(url("t-1"), headers=alice.headers).json()
    response = client.patch(url("t-1"), json=body, headers=alice.headers)
    assert_error(response, 422)
    assert client.get(url("t-1"), headers=alice.headers).json() == before


# --- not found, and other users' threads ------------------------------------------------------


def _requests(checkpoint_id: str) -> list[tuple[str, str, Json | None]]:
    """Every thread route but the list, on thread "t-1": (method, url, body)."""
    return [
        ("GET", url("t-1"), None),
        ("GET", url("t-1", "state"), None),
        ("GET", url("t-1", "history"), None),
        ("GET", url("t-1", "checkpoints", checkpoint_id), None),
        ("PUT", url("t-1", "state"), {"values": {"n": 666}}),
        ("POST", url("t-1", "copy"), {"target_thread_id": "stolen"}),
        ("POST", url("t-1", "prune"), {"strategy": "keep_latest"}),
        ("POST", url("t-1", "prune"), {"strategy": "delete"}),
        ("PATCH", url("t-1"), {"metadata": {"retention": {"ttl_days": None}}}),
        ("DELETE", url("t-1"), None),
    ]


def test_every_thread_route_on_an_unknown_thread_is_404(client: TestClient, alice: Caller) -> None:
    for method, path, body in _requests("1f0c0000-0000-6000-8000-000000000001"):
        if method == "PUT":
            continue  # PUT creates it
        response = client.request(method, path, json=body, headers=alice.headers)
        assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    "index",
    range(10),
    ids=["get", "state", "history", "checkpoint", "put", "copy", "keep", "del", "patch", "delete"],
)
def test_another_users_thread_is_invisible_and_unchanged(
    client: TestClient, alice: Caller, bob: Caller, settings: Settings, index: int
) -> None:
    first = put_state(client, alice, "t-1", {"items": [1]}, metadata={"m": 1})["checkpoint_id"]
    put_state(client, alice, "t-1", {"items": [2]})
    before = history(client, alice, "t-1")
    method, path, body = _requests(first)[index]

    response = client.request(method, path, json=body, headers=bob.headers)

    if method == "PUT":
        # Bob's "t-1" is his own thread: created, with only his checkpoint.
        assert response.status_code == 201, response.text
        assert [s["values"] for s in history(client, bob, "t-1")] == [{"n": 666}]
        assert thread_ids(client, bob) == ["t-1"]
    else:
        error = assert_error(response, 404, "not_found")
        assert "t-1" in error["message"]
        assert thread_ids(client, bob) == []
    assert history(client, alice, "t-1") == before
    assert thread_ids(client, alice) == ["t-1"]
    assert client.get(url("t-1"), headers=alice.headers).json()["metadata"] == {}
    bobs = 1 if method == "PUT" else 0
    assert count_rows(settings, "SELECT count(*) FROM threads") == 1 + bobs
    assert count_rows(settings, "SELECT count(*) FROM checkpoints") == 2 + bobs


def test_two_users_each_have_their_own_thread_of_one_id(
    client: TestClient, alice: Caller, bob: Caller, settings: Settings
) -> None:
    put_state(client, alice, "main", {"who": "alice"})
    put_state(client, bob, "main", {"who": "bob"})
    put_state(client, alice, "main", {"who": "alice", "n": 2})

    assert get_state(client, alice, "main")["values"] == {"who": "alice", "n": 2}
    assert [s["values"] for s in history(client, bob, "main")] == [{"who": "bob"}]
    assert thread_ids(client, alice) == thread_ids(client, bob) == ["main"]
    # A saver with a user's id reaches that user's thread.
    got = with_saver(
        settings,
        lambda saver: saver.aget_tuple({"configurable": {"thread_id": "main", "user_id": bob.id}}),
    )
    assert got.checkpoint["channel_values"] == {"who": "bob"}

    assert client.delete(url("main"), headers=bob.headers).status_code == 204
    assert_error(client.get(url("main"), headers=bob.headers), 404)
    assert len(history(client, alice, "main")) == 2
    assert count_rows(settings, "SELECT count(*) FROM checkpoints") == 2


# --- conversations name their thread ------------------------------------------------------


def test_conversation_thread_id_round_trips_on_create_and_patch(
    client: TestClient, alice: Caller
) -> None:
    conversation = make_conversation(client, alice, title="t", thread_id="thread-é 1")
    assert conversation["thread_id"] == "thread-é 1"
    assert get_conversation(client, alice, conversation["id"])["thread_id"] == "thread-é 1"

    response = client.patch(
        f"/v1/conversations/{conversation['id']}",
        json={"thread_id": "thread-2"},
        headers=alice.headers,
    )

    assert response.status_code == 200, response.text
    assert response.json()["thread_id"] == "thread-2"
    assert get_conversation(client, alice, conversation["id"])["thread_id"] == "thread-2"
    untouched = client.patch(
        f"/v1/conversations/{conversation['id']}", json={"title": "x"}, headers=alice.headers
    )
    assert untouched.json()["thread_id"] == "thread-2"
    cleared = client.patch(
        f"/v1/conversations/{conversation['id']}", json={"thread_id": None}, headers=alice.headers
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["thread_id"] is None
    assert get_conversation(client, alice, conversation["id"])["thread_id"] is None
    for body in ({"thread_id": ""}, {"thread_id": 5}, {"thread_id": "x" * 501}):
        response = client.post("/v1/conversations", json=body, headers=alice.headers)
        assert_error(response, 422, "validation_error")


# --- the OpenAPI document describes these responses ---------------------------------------


def test_openapi_thread_schemas_match_real_responses(client: TestClient, alice: Caller) -> None:
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]

    def matches(name: str, body: Json) -> None:
        schema = schemas[name]
        assert set(schema["required"]) <= set(body) <= set(schema["properties"]), (name, body)

    saved = put_state(client, alice, "t-1", {"n": 1})
    matches("SavedCheckpoint", saved)
    matches("ThreadState", get_state(client, alice, "t-1"))
    matches("ThreadHistory", client.get(url("t-1", "history"), headers=alice.headers).json())
    matches("ThreadPage", client.get("/v1/threads", headers=alice.headers).json())
    matches("Thread", client.get(url("t-1"), headers=alice.headers).json())
    copied = client.post(
        url("t-1", "copy"), json={"target_thread_id": "t-2"}, headers=alice.headers
    )
    matches("CopiedThread", copied.json())
    pruned = client.post(url("t-1", "prune"), json={"strategy": "delete"}, headers=alice.headers)
    matches("Pruned", pruned.json())
    state = doc["paths"]["/v1/threads/{thread_id}/state"]
    assert state["put"]["requestBody"]["required"] is True
    [thread_param] = [p for p in state["get"]["parameters"] if p["in"] == "path"]
    assert thread_param["schema"]["type"] == "string"
    assert (thread_param["schema"]["minLength"], thread_param["schema"]["maxLength"]) == (1, 500)
    query = {
        p["name"]
        for p in doc["paths"]["/v1/threads/{thread_id}/history"]["get"]["parameters"]
        if p["in"] == "query"
    }
    assert query == {"limit", "before", "metadata", "checkpoint_ns"}
