"""Gateways of users and tokens."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from dal.errors import Conflict, NotFound
from dal.gateways import users
from dal.records import User, UserDraft, UserPatch


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
    assert (await users.get_user_by_token(pool, secret=issued.secret)).id == alice.id
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
    assert (await users.get_user_by_token(pool, secret=issued.secret)).id == alice.id


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
    assert (await users.get_user_by_token(pool, secret=created.token.secret)) == created.user
    # A failing second attempt leaves nothing behind.
    before = await pool.fetchval("SELECT count(*) FROM api_tokens")
    with pytest.raises(Conflict):
        await users.create_user(pool, draft=UserDraft(username="alice"))
    assert await pool.fetchval("SELECT count(*) FROM api_tokens") == before
    assert isinstance(created.user, User)
