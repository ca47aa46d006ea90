"""The profiles' statements are served by their indexes, under custom and generic plans alike
(see tests/dal/test_plans.py): many users' profiles of two kinds, one of each active, and the
system's, ANALYZEd, so a sequential scan would be chosen if it could."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg
import psycopg
import pytest

from dal.queries import Q
from tests.dal.test_plans import assert_index_scan, explain

USERS, PROFILES_PER_KIND = 2000, 5
GENERIC = pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
SYSTEM = UUID(int=0)


@pytest.fixture(scope="module")
def seeded_url(module_database_url: str) -> str:
    """USERS users with PROFILES_PER_KIND profiles of each kind (the first active), and the
    system's, ANALYZEd."""
    with psycopg.connect(module_database_url, autocommit=True) as conn:
        conn.execute(
            f"""
            INSERT INTO users (id, username)
            SELECT gen_random_uuid(), 'u' || i FROM generate_series(1, {USERS}) AS i;
            INSERT INTO profiles (id, user_id, kind, name, settings, active)
            SELECT gen_random_uuid(), u.id, k.kind, 'p' || i, '{{}}', i = 1
              FROM (SELECT id FROM users UNION ALL SELECT NULL) AS u,
                   (VALUES ('llm'), ('rsshub')) AS k (kind),
                   generate_series(1, {PROFILES_PER_KIND}) AS i;
            """
        )
        conn.execute("ANALYZE")
    return module_database_url


@pytest.fixture
async def seeded(seeded_url: str) -> AsyncIterator[tuple[asyncpg.Connection[Any], Any]]:
    """A plain connection on the seeded database, and one user's profile (id, user_id)."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(seeded_url)
    row = await conn.fetchrow(
        "SELECT id, user_id FROM profiles WHERE user_id IS NOT NULL ORDER BY id LIMIT 1"
    )
    assert row is not None
    try:
        yield conn, row
    finally:
        await conn.close()


@GENERIC
@pytest.mark.parametrize("system", [False, True], ids=["user", "system"])
async def test_resolving_reads_the_active_profiles_index(
    seeded: Any, generic: bool, system: bool
) -> None:
    conn, row = seeded
    user_id = None if system else row["user_id"]
    nodes = await explain(conn, Q["get_active_profile"], user_id, "llm", generic=generic)
    assert_index_scan(nodes, "profiles_one_active", "profiles")


@GENERIC
@pytest.mark.parametrize("kind", [None, "llm"], ids=["every-kind", "one-kind"])
async def test_a_list_is_read_through_the_scopes_index(
    seeded: Any, generic: bool, kind: str | None
) -> None:
    conn, row = seeded
    nodes = await explain(conn, Q["list_profiles"], row["user_id"], kind, 101, generic=generic)
    # (Its few rows may then be sorted: a scope holds a handful of profiles.)
    assert_index_scan(nodes, "profiles_scope_kind_name_key", "profiles")


@GENERIC
@pytest.mark.parametrize(
    ("name", "extra"),
    [("get_profile", ()), ("delete_profile", ()), ("update_profile_active", ())],
)
async def test_one_profile_is_found_by_its_key(
    seeded: Any, generic: bool, name: str, extra: tuple[Any, ...]
) -> None:
    conn, row = seeded
    async with conn.transaction():
        nodes = await explain(conn, Q[name], row["user_id"], row["id"], *extra, generic=generic)
        assert any(n.get("Index Name") == "profiles_pkey" for n in nodes), name
        if name == "update_profile_active":
            assert_index_scan(nodes, "profiles_scope_kind_name_key", "profiles")


@GENERIC
async def test_key_rotation_walks_and_writes_profiles_by_their_key(
    seeded: Any, generic: bool
) -> None:
    """`mnemo keys rotate`: its batches follow the primary key (keyset by id), and write back
    by it, whether most profiles hold a secret or few do."""
    conn, row = seeded
    for holding in ("id::text < '8'", "true"):
        async with conn.transaction():
            await conn.execute(
                'UPDATE profiles SET secrets = \'{"api_key": {"ciphertext": "x"}}\' '
                f"WHERE {holding}"
            )
            await conn.execute("ANALYZE profiles")
            nodes = await explain(
                conn, Q["list_profile_secrets_for_rotation"], SYSTEM, 100, generic=generic
            )
            assert_index_scan(nodes, "profiles_pkey", "profiles")
            payload = json.dumps({str(row["id"]): {}})  # (a plain connection: no jsonb codec)
            nodes = await explain(
                conn, Q["update_profile_secrets_rotated"], payload, generic=generic
            )
            assert_index_scan(nodes, "profiles_pkey", "profiles")
