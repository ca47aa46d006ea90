"""Identity's statements are served by their indexes, under custom and generic plans alike
(see tests/dal/test_plans.py): many users with passwords, sessions and refresh tokens, and
many login-failure counters, ANALYZEd, so a sequential scan would be chosen if it could."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import psycopg
import pytest

from dal.queries import Q
from tests.dal.test_foreign_key_plans import nested_plans, plan_on
from tests.dal.test_plans import assert_index_scan, explain

USERS, SESSIONS_PER_USER, TOKENS_PER_SESSION, FAILURES = 2000, 5, 3, 20_000
GENERIC = pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
NOW = datetime(2026, 12, 7, tzinfo=UTC)


@pytest.fixture(scope="module")
def seeded_url(module_database_url: str) -> str:
    """USERS users with a password, SESSIONS_PER_USER sessions each with TOKENS_PER_SESSION
    refresh tokens (the last current), and FAILURES login-failure counters, ANALYZEd."""
    with psycopg.connect(module_database_url, autocommit=True) as conn:
        conn.execute(
            f"""
            INSERT INTO users (id, username)
            SELECT gen_random_uuid(), 'u' || i FROM generate_series(1, {USERS}) AS i;
            INSERT INTO user_passwords (user_id, hash, updated_at)
            SELECT id, '$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA', now() FROM users;
            INSERT INTO auth_sessions (id, user_id, created_at, expires_at)
            SELECT gen_random_uuid(), u.id, now(), now() + interval '30 days'
              FROM users AS u, generate_series(1, {SESSIONS_PER_USER});
            INSERT INTO refresh_tokens (session_id, token_hash, created_at, used_at)
            SELECT s.id, sha256((s.id::text || i)::bytea), now(),
                   CASE WHEN i < {TOKENS_PER_SESSION} THEN now() END
              FROM auth_sessions AS s, generate_series(1, {TOKENS_PER_SESSION}) AS i;
            INSERT INTO login_failures (username, client, failures, last_failed_at)
            SELECT 'u' || i, '10.0.' || (i % 250) || '.' || (i % 7), 1,
                   now() - i * interval '1 minute'
              FROM generate_series(1, {FAILURES}) AS i;
            """
        )
        conn.execute("ANALYZE")
    return module_database_url


@pytest.fixture
async def seeded(seeded_url: str) -> AsyncIterator[tuple[asyncpg.Connection[Any], Any]]:
    """A connection on the seeded database, in a transaction rolled back at the end, and one
    session (id, user_id) with its current refresh token's hash."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(seeded_url)
    undo = conn.transaction()
    await undo.start()
    row = await conn.fetchrow(
        "SELECT s.id, s.user_id, t.token_hash FROM auth_sessions AS s"
        " JOIN refresh_tokens AS t ON t.session_id = s.id AND t.used_at IS NULL"
        " ORDER BY s.id LIMIT 1"
    )
    assert row is not None
    try:
        yield conn, row
    finally:
        await undo.rollback()
        await conn.close()


def _bytea(value: bytes, generic: bool) -> Any:
    """A bytea argument: bytes for asyncpg, its text form for a generic plan's literal."""
    return "\\x" + value.hex() if generic else value


def _indexes(nodes: list[dict[str, Any]]) -> set[str]:
    """The indexes a plan reads, an INSERT ... ON CONFLICT's arbiter included."""
    found = {n["Index Name"] for n in nodes if "Index Name" in n}
    for node in nodes:
        found |= set(node.get("Conflict Arbiter Indexes", []))
    return found


@GENERIC
async def test_a_sign_in_finds_the_user_and_their_password_by_index(
    seeded: Any, generic: bool
) -> None:
    conn, _ = seeded
    nodes = await explain(conn, Q["get_login"], "u17", generic=generic)
    assert_index_scan(nodes, "users_username_key", "users")
    assert_index_scan(nodes, "user_passwords_pkey", "user_passwords")


@GENERIC
@pytest.mark.parametrize("name", ["get_password_hash", "upsert_password", "update_password_hash"])
async def test_a_password_is_found_by_its_user(seeded: Any, generic: bool, name: str) -> None:
    conn, row = seeded
    args: dict[str, tuple[Any, ...]] = {
        "get_password_hash": (row["user_id"],),
        "upsert_password": (row["user_id"], "h", NOW),
        "update_password_hash": (row["user_id"], "old", "new"),
    }
    nodes = await explain(conn, Q[name], *args[name], generic=generic)
    assert "user_passwords_pkey" in _indexes(nodes), name
    assert not any(n.get("Node Type") == "Seq Scan" for n in nodes), name


@GENERIC
async def test_a_rotation_finds_the_token_its_session_and_user_by_their_keys(
    seeded: Any, generic: bool
) -> None:
    conn, row = seeded
    new_hash = _bytea(hashlib.sha256(b"new").digest(), generic)
    args = (_bytea(row["token_hash"], generic), NOW, NOW + timedelta(days=30), new_hash)
    nodes = await explain(conn, Q["rotate_refresh_token"], *args, generic=generic)
    assert_index_scan(nodes, "refresh_tokens_pkey", "refresh_tokens")
    assert_index_scan(nodes, "auth_sessions_pkey", "auth_sessions")
    assert_index_scan(nodes, "users_pkey", "users")


@GENERIC
async def test_a_refresh_token_is_found_by_its_hash(seeded: Any, generic: bool) -> None:
    conn, row = seeded
    token = _bytea(row["token_hash"], generic)
    nodes = await explain(conn, Q["get_refresh_token"], token, generic=generic)
    assert_index_scan(nodes, "refresh_tokens_pkey", "refresh_tokens")
    assert_index_scan(nodes, "auth_sessions_pkey", "auth_sessions")


@GENERIC
async def test_an_access_tokens_session_and_user_are_found_by_their_keys(
    seeded: Any, generic: bool
) -> None:
    conn, row = seeded
    args = (row["id"], row["user_id"], NOW)
    nodes = await explain(conn, Q["get_session_user"], *args, generic=generic)
    assert_index_scan(nodes, "auth_sessions_pkey", "auth_sessions")
    assert_index_scan(nodes, "users_pkey", "users")


@GENERIC
async def test_one_session_is_revoked_by_its_key(seeded: Any, generic: bool) -> None:
    conn, row = seeded
    args = (row["id"], NOW, "logout")
    nodes = await explain(conn, Q["revoke_auth_session"], *args, generic=generic)
    assert_index_scan(nodes, "auth_sessions_pkey", "auth_sessions")


@GENERIC
@pytest.mark.parametrize("keep", [False, True], ids=["all", "but-one"])
async def test_a_users_sessions_are_revoked_through_the_user_index(
    seeded: Any, generic: bool, keep: bool
) -> None:
    conn, row = seeded
    args = (row["user_id"], NOW, "password_set", row["id"] if keep else None)
    nodes = await explain(conn, Q["revoke_user_auth_sessions"], *args, generic=generic)
    assert_index_scan(nodes, "auth_sessions_user_id_idx", "auth_sessions")


@GENERIC
async def test_expired_sessions_are_deleted_with_their_tokens_by_index(
    seeded: Any, generic: bool
) -> None:
    conn, row = seeded
    await conn.execute(
        "UPDATE auth_sessions SET expires_at = $2 WHERE user_id = $1", row["user_id"], NOW
    )
    nodes = await explain(
        conn, Q["delete_expired_auth_sessions"], row["user_id"], NOW, generic=generic
    )
    assert_index_scan(nodes, "auth_sessions_user_id_idx", "auth_sessions")

    async def delete(db: Any) -> None:
        await db.execute(Q["delete_expired_auth_sessions"].sql, row["user_id"], NOW)

    plans = await nested_plans(conn, delete, generic=generic)
    cascade = plan_on(plans, "refresh_tokens")
    assert_index_scan(cascade, "refresh_tokens_session_id_idx", "refresh_tokens")
    left = await conn.fetchval(
        "SELECT count(*) FROM auth_sessions WHERE user_id = $1", row["user_id"]
    )
    assert left == 0


@GENERIC
@pytest.mark.parametrize(
    "name", ["get_login_lock", "upsert_login_attempt", "delete_login_failures"]
)
async def test_a_login_failure_counter_is_found_by_its_pair(
    seeded: Any, generic: bool, name: str
) -> None:
    conn, _ = seeded
    args: dict[str, tuple[Any, ...]] = {
        "get_login_lock": ("u17", "10.0.17.3", NOW),
        "upsert_login_attempt": ("u17", "10.0.17.3", NOW, NOW - timedelta(days=1), 5, 1.0, 900.0),
        "delete_login_failures": ("u17", "10.0.17.3"),
    }
    nodes = await explain(conn, Q[name], *args[name], generic=generic)
    assert "login_failures_pkey" in _indexes(nodes), name
    assert not any(
        n.get("Node Type") == "Seq Scan" and n.get("Relation Name") == "login_failures"
        for n in nodes
    ), name


@GENERIC
async def test_stale_counters_are_found_oldest_first_by_index(seeded: Any, generic: bool) -> None:
    conn, _ = seeded
    args = (NOW - timedelta(days=365), NOW, 100)
    nodes = await explain(conn, Q["delete_stale_login_failures"], *args, generic=generic)
    assert_index_scan(nodes, "login_failures_last_failed_at_idx", "login_failures")
