"""Gateways of users and tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from pydantic import ValidationError

from dal.errors import Conflict, NotFound
from dal.gateways import meta, users
from dal.ids import new_id
from dal.records.users import IssuedToken, User, UserDraft, UserPatch
from dal.settings import Settings
from tests.dal.conftest import make_user

if TYPE_CHECKING:
    from tests.test_session_state import SessionRun


async def test_insert_user_lowercases_username_and_get_by_username_finds_it(pool: Any) -> None:
    user = await users.insert_user(
        pool, draft=UserDraft(username=" Carol ", display_name="Carol C", metadata={"k": [1]})
    )
    assert user.username == "carol" and user.display_name == "Carol C"
    assert user.metadata == {"k": [1]} and user.deactivated_at is None
    assert await users.get_user_by_username(pool, username="CAROL") == user
    assert await users.get_user(pool, user_id=user.id) == user


async def test_insert_user_taken_username_raises_conflict(pool: Any, alice: User) -> None:
    with pytest.raises(Conflict, match="username 'alice' is taken"):
        await users.insert_user(pool, draft=UserDraft(username="ALICE"))


def test_user_draft_bad_username_is_rejected() -> None:
    for bad in ("", "-x", "has space", "x" * 65, "é"):
        with pytest.raises(ValidationError):
            UserDraft(username=bad)


async def test_update_user_changes_only_given_fields(pool: Any, alice: User) -> None:
    updated = await users.update_user(
        pool, user_id=alice.id, patch=UserPatch(avatar_url="https://x/a.png")
    )
    assert updated.avatar_url == "https://x/a.png"
    assert updated.display_name == alice.display_name and updated.updated_at > alice.updated_at


async def test_update_user_null_clears_and_absent_keeps(pool: Any) -> None:
    user = await users.insert_user(
        pool, draft=UserDraft(username="dora", display_name="Dora", avatar_url="https://x/d.png")
    )

    cleared = await users.update_user(pool, user_id=user.id, patch=UserPatch(display_name=None))

    assert cleared.display_name is None and cleared.avatar_url == "https://x/d.png"
    patch = UserPatch.model_validate_json('{"avatar_url": null, "metadata": {"k": 1}}')
    cleared = await users.update_user(pool, user_id=user.id, patch=patch)
    assert (cleared.display_name, cleared.avatar_url, cleared.metadata) == (None, None, {"k": 1})


def test_user_patch_empty_or_null_metadata_is_rejected() -> None:
    for body in ("{}", '{"metadata": null}'):
        with pytest.raises(ValidationError):
            UserPatch.model_validate_json(body)


async def test_get_and_update_missing_user_raise_not_found(pool: Any) -> None:
    from dal.ids import new_id

    with pytest.raises(NotFound):
        await users.get_user(pool, user_id=new_id())
    with pytest.raises(NotFound):
        await users.update_user(pool, user_id=new_id(), patch=UserPatch(display_name="x"))
    with pytest.raises(NotFound):
        await users.insert_token(pool, user_id=new_id())


async def test_token_authenticates_until_revoked(pool: Any, alice: User) -> None:
    issued = await users.insert_token(pool, user_id=alice.id, name="laptop")
    assert issued.secret.startswith("mnemo_") and issued.token.name == "laptop"
    assert (await users.get_user_by_token(pool, secret=issued.secret)).user.id == alice.id
    stored = await pool.fetchval("SELECT token_hash FROM api_tokens WHERE id = $1", issued.token.id)
    assert stored == users.hash_token(issued.secret) and issued.secret.encode() not in stored
    revoked = await users.revoke_token(pool, user_id=alice.id, token_id=issued.token.id)
    assert revoked.revoked_at is not None
    with pytest.raises(NotFound):
        await users.get_user_by_token(pool, secret=issued.secret)
    with pytest.raises(NotFound):  # revoking twice
        await users.revoke_token(pool, user_id=alice.id, token_id=issued.token.id)


async def test_revoke_token_of_other_user_raises_not_found(
    pool: Any, alice: User, bob: User
) -> None:
    issued = await users.insert_token(pool, user_id=alice.id)
    with pytest.raises(NotFound):
        await users.revoke_token(pool, user_id=bob.id, token_id=issued.token.id)
    assert (await users.get_user_by_token(pool, secret=issued.secret)).user.id == alice.id


async def test_deactivated_user_tokens_stop_working(pool: Any, alice: User) -> None:
    issued = await users.insert_token(pool, user_id=alice.id)
    deactivated = await users.deactivate_user(pool, user_id=alice.id)
    assert deactivated.deactivated_at is not None
    again = await users.deactivate_user(pool, user_id=alice.id)  # idempotent
    assert again.deactivated_at == deactivated.deactivated_at
    with pytest.raises(NotFound):
        await users.get_user_by_token(pool, secret=issued.secret)


async def test_unknown_token_raises_not_found(pool: Any) -> None:
    with pytest.raises(NotFound):
        await users.get_user_by_token(pool, secret="mnemo_nope")


async def test_create_user_makes_user_and_token_in_one_transaction(pool: Any, alice: User) -> None:
    created = await users.create_user(pool, draft=UserDraft(username="dave"), token_name="first")
    assert (await users.get_user_by_token(pool, secret=created.token.secret)).user == created.user
    # A failing second attempt leaves nothing behind.
    before = await pool.fetchval("SELECT count(*) FROM api_tokens")
    with pytest.raises(Conflict):
        await users.create_user(pool, draft=UserDraft(username="alice"))
    assert await pool.fetchval("SELECT count(*) FROM api_tokens") == before
    assert isinstance(created.user, User)


# --- token expiry and the cap on active tokens -------------------------------------------


async def _expire(pool: Any, token_id: Any) -> None:
    """Move a token's expiry into the past (as if its time had passed)."""
    await pool.execute(
        "UPDATE api_tokens SET created_at = now() - interval '2 hours',"
        " expires_at = now() - interval '1 hour' WHERE id = $1",
        token_id,
    )


async def test_token_with_expiry_authenticates_until_it_expires(pool: Any, alice: User) -> None:
    issued = await users.insert_token(pool, user_id=alice.id, expires_in=3600)
    token = issued.token
    assert token.expires_at is not None
    assert (token.expires_at - token.created_at).total_seconds() == 3600
    assert (await users.get_user_by_token(pool, secret=issued.secret)).user.id == alice.id

    await _expire(pool, token.id)

    with pytest.raises(NotFound):
        await users.get_user_by_token(pool, secret=issued.secret)


async def test_token_without_expiry_never_expires(pool: Any, alice: User) -> None:
    issued = await users.insert_token(pool, user_id=alice.id)
    assert issued.token.expires_at is None
    assert (await users.get_user_by_token(pool, secret=issued.secret)).user.id == alice.id


async def test_insert_token_expires_in_out_of_range_raises_invalid_input(
    pool: Any, alice: User
) -> None:
    from dal.errors import InvalidInput
    from dal.records.users import MAX_TOKEN_EXPIRES_IN

    for bad in (0, -1, MAX_TOKEN_EXPIRES_IN + 1, 10**30):
        with pytest.raises(InvalidInput):
            await users.insert_token(pool, user_id=alice.id, expires_in=bad)
    assert await pool.fetchval("SELECT count(*) FROM api_tokens") == 0
    longest = await users.insert_token(pool, user_id=alice.id, expires_in=MAX_TOKEN_EXPIRES_IN)
    assert longest.token.expires_at is not None


async def test_issue_token_at_max_active_raises_limit_reached_until_one_is_revoked(
    pool: Any, alice: User, bob: User
) -> None:
    from dal.errors import LimitReached

    held = [await users.issue_token(pool, user_id=alice.id, max_active=3) for _ in range(3)]
    with pytest.raises(LimitReached) as caught:
        await users.issue_token(pool, user_id=alice.id, max_active=3)
    assert caught.value.code == "too_many_tokens" and "3" in caught.value.message
    assert (await users.issue_token(pool, user_id=bob.id, max_active=3)).token.user_id == bob.id

    # Neither a revoked nor an expired token counts.
    await users.revoke_token(pool, user_id=alice.id, token_id=held[0].token.id)
    await users.issue_token(pool, user_id=alice.id, max_active=3)
    await _expire(pool, held[1].token.id)
    await users.issue_token(pool, user_id=alice.id, max_active=3)
    with pytest.raises(LimitReached):
        await users.issue_token(pool, user_id=alice.id, max_active=3)
    active = await pool.fetchval(
        "SELECT count(*) FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL"
        " AND (expires_at IS NULL OR expires_at > now())",
        alice.id,
    )
    assert active == 3


async def test_issue_token_concurrent_callers_never_pass_max_active(pool: Any, alice: User) -> None:
    import asyncio

    from dal.errors import LimitReached

    results = await asyncio.gather(
        *(users.issue_token(pool, user_id=alice.id, max_active=4) for _ in range(30)),
        return_exceptions=True,
    )

    issued = [r for r in results if isinstance(r, IssuedToken)]
    refused = [r for r in results if isinstance(r, LimitReached)]
    assert len(issued) == 4 and len(refused) == 26, results
    assert await pool.fetchval("SELECT count(*) FROM api_tokens") == 4


async def test_issue_token_for_missing_user_raises_not_found(pool: Any) -> None:
    from dal.ids import new_id

    with pytest.raises(NotFound):
        await users.issue_token(pool, user_id=new_id(), max_active=3)


async def test_create_user_first_token_may_expire(pool: Any) -> None:
    created = await users.create_user(pool, draft=UserDraft(username="eve", token_expires_in=60))
    token = created.token.token
    assert token.expires_at is not None
    assert (token.expires_at - token.created_at).total_seconds() == 60
    await _expire(pool, token.id)
    with pytest.raises(NotFound):
        await users.get_user_by_token(pool, secret=created.token.secret)


async def test_issue_token_leaves_the_session_clean_even_when_refused(settings: Any) -> None:
    from dal.database import open_pool
    from dal.errors import DomainError
    from dal.ids import new_id
    from tests.test_session_state import CLEAN, leftovers

    update = {"db_min_connections": 1, "db_max_connections": 1}
    pool = await open_pool(settings.model_copy(update=update))
    try:
        user = await make_user(pool)
        for user_id in (user.id, user.id, new_id()):  # issued, at the limit, no such user
            try:
                await users.issue_token(pool, user_id=user_id, expires_in=60, max_active=1)
            except DomainError:
                pass
            async with pool.acquire() as conn:
                assert await leftovers(conn) == CLEAN
    finally:
        await pool.close()


@pytest.fixture
async def tokens_seeded(database_url: str) -> Any:
    """A plain connection on a database of 200 users with 25 tokens each, ANALYZEd."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    await conn.execute(
        """
        INSERT INTO users (id, username)
        SELECT gen_random_uuid(), 'u' || i FROM generate_series(1, 200) AS i;
        INSERT INTO api_tokens (id, user_id, token_hash, expires_at, revoked_at)
        SELECT gen_random_uuid(), u.id, sha256((u.id::text || i)::bytea),
               CASE WHEN i % 3 = 0 THEN now() + interval '1 day' END,
               CASE WHEN i % 4 = 0 THEN now() END
          FROM users AS u, generate_series(1, 25) AS i;
        ANALYZE;
        """
    )
    try:
        yield conn
    finally:
        await conn.close()


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
@pytest.mark.parametrize("name", ["list_tokens", "insert_token"])
async def test_token_queries_find_a_users_tokens_through_the_user_id_index(
    tokens_seeded: Any, name: str, generic: bool
) -> None:
    from dal.queries import Q
    from tests.dal.test_plans import assert_index_scan, explain

    conn = tokens_seeded
    user_id = await conn.fetchval("SELECT id FROM users ORDER BY id LIMIT 1")
    if name == "list_tokens":
        args: tuple[Any, ...] = (user_id, 101)
    else:  # the count of the user's active tokens against the limit
        digest: Any = "\\x" + "ab" * 32 if generic else b"\xab" * 32  # a literal, or bound
        args = (new_id(), user_id, digest, "n", 60, 100)

    nodes = await explain(conn, Q[name], *args, generic=generic)

    assert_index_scan(nodes, "api_tokens_user_id_idx", "api_tokens")


async def session_exercise(pool: Any, settings: Settings, run: SessionRun) -> None:
    """Users, tokens and the server's state, for tests/test_session_state.py."""
    created = await run.one(
        "create_user", lambda: users.create_user(pool, draft=UserDraft(username="s"))
    )
    uid = created.user.id
    await run(
        [
            ("get_user", lambda: users.get_user(pool, user_id=uid)),
            ("get_user_by_username", lambda: users.get_user_by_username(pool, username="s")),
            (
                "update_user",
                lambda: users.update_user(pool, user_id=uid, patch=UserPatch(display_name="S")),
            ),
            (
                "get_user_by_token",
                lambda: users.get_user_by_token(pool, secret=created.token.secret),
            ),
            (
                "create_user conflict",
                lambda: users.create_user(pool, draft=UserDraft(username="s")),
            ),
            ("insert_token", lambda: users.insert_token(pool, user_id=uid)),
            ("issue_token", lambda: users.issue_token(pool, user_id=uid)),
            ("list_tokens", lambda: users.list_tokens(pool, user_id=uid, limit=10)),
            (
                "revoke_token",
                lambda: users.revoke_token(pool, user_id=uid, token_id=created.token.token.id),
            ),
            ("get_server_state", lambda: meta.get_server_state(pool)),
            ("ping", lambda: meta.ping(pool)),
            ("count_tables", lambda: meta.count_tables(pool)),
            ("count_auth_listeners", lambda: meta.count_auth_listeners(pool)),
            ("notify_auth_applied", lambda: meta.notify_auth_applied(pool, key="0:all")),
            ("notify_auth_sync", lambda: meta.notify_auth_sync(pool, key="sync:session-test")),
            ("deactivate_user", lambda: users.deactivate_user(pool, user_id=uid)),
        ]
    )
