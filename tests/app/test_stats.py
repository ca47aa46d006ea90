"""Storage stats over HTTP (README "Storage stats"): GET /v1/admin/stats with the admin token,
on a populated database: numbers consistent with the data."""

from __future__ import annotations

import psycopg

from app import create_app
from dal.settings import Settings
from tests.app.conftest import (
    ADMIN,
    Caller,
    TestClient,
    append,
    make_conversation,
    make_user,
)


def _checkpoints(database_url: str, owner: str, thread: str, n: int) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO threads (thread_id, owner, user_id) VALUES (%s, %s, %s)",
            (thread, owner, owner),
        )
        for i in range(n):
            conn.execute(
                "INSERT INTO checkpoints (thread_id, owner, checkpoint_id, checkpoint, created_at)"
                " VALUES (%s, %s, %s, '{}', now() - make_interval(days => %s))",
                (thread, owner, f"c{i}", n - i),
            )


def test_stats_count_what_the_database_holds(
    client: TestClient, alice: Caller, bob: Caller, database_url: str
) -> None:
    for _ in range(2):
        conversation = make_conversation(client, alice)
        for _ in range(3):
            append(client, alice, conversation["id"])
    append(client, bob, make_conversation(client, bob)["id"])
    _checkpoints(database_url, bob.id, "busy", 9)
    _checkpoints(database_url, alice.id, "quiet", 2)

    response = client.get("/v1/admin/stats", params={"top": 1}, headers=ADMIN)
    assert response.status_code == 200, response.text
    stats = response.json()
    tables = {t["table_name"]: t for t in stats["tables"]}
    assert tables["messages"]["rows"] == 7 and tables["messages"]["rows_exact"]
    assert tables["conversations"]["rows"] == 3
    assert tables["checkpoints"]["rows"] == 11
    for t in tables.values():
        assert t["total_bytes"] == t["table_bytes"] + t["toast_bytes"] + t["index_bytes"]
    assert stats["total_bytes"] == sum(t["total_bytes"] for t in tables.values())
    # Biggest first: bob has 1 message and 9 checkpoints, alice 6 and 2.
    assert [u["username"] for u in stats["users"]] == ["bob"]
    assert stats["users"][0] == {
        "user_id": bob.id,
        "username": "bob",
        "conversations": 1,
        "messages": 1,
        "checkpoints": 9,
        "attachment_bytes": 0,
    }
    assert [(t["thread_id"], t["checkpoints"]) for t in stats["threads"]] == [("busy", 9)]
    oldest = stats["oldest"]
    assert oldest["oldest_checkpoint_at"] == stats["threads"][0]["oldest_at"]
    assert oldest["oldest_message_at"] is not None and oldest["stalest_thread_at"] is not None
    assert stats["top"] == 1

    everyone = client.get("/v1/admin/stats", params={"top": 5}, headers=ADMIN).json()
    assert [u["username"] for u in everyone["users"]] == ["bob", "alice"]
    assert [t["thread_id"] for t in everyone["threads"]] == ["busy", "quiet"]


def test_stats_need_the_admin_token_and_a_top_in_range(client: TestClient, alice: Caller) -> None:
    assert client.get("/v1/admin/stats", headers=alice.headers).status_code == 403
    assert client.get("/v1/admin/stats").status_code == 401
    for top in ("0", "1001", "x"):
        response = client.get("/v1/admin/stats", params={"top": top}, headers=ADMIN)
        assert response.status_code == 422, response.text


def test_stats_say_what_the_retention_policies_would_delete_and_delete_nothing(
    settings: Settings, database_url: str
) -> None:
    with TestClient(create_app(settings)) as client:
        bob = Caller(*make_user(client, "bob"))
        _checkpoints(database_url, bob.id, "busy", 9)
        _checkpoints(database_url, bob.id, "quiet", 2)
        off = client.get("/v1/admin/stats", headers=ADMIN).json()["retention"]
        assert off["policy"] == {
            "thread_days": None,
            "keep_checkpoints": None,
            "conversation_days": None,
            "overrides": True,
        }
        assert off["checkpoints"] == 0
    keep_two = settings.model_copy(update={"retention_keep_checkpoints": 2})
    with TestClient(create_app(keep_two)) as client:
        unasked = client.get("/v1/admin/stats", headers=ADMIN).json()["retention"]
        assert unasked["policy"]["keep_checkpoints"] == 2 and unasked["checkpoints"] is None
        response = client.get("/v1/admin/stats?retention=true", headers=ADMIN)
        assert response.status_code == 200, response.text
        would = response.json()["retention"]
        assert would["policy"]["keep_checkpoints"] == 2
        assert would["checkpoints"] == 7  # busy keeps its newest 2, quiet has only 2
        assert would["threads"] == 0 and would["conversations"] == 0
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM checkpoints").fetchone() == (11,)
