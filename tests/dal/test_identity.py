"""The identity gateway on a real database (README "Identity"): passwords, sessions, refresh
rotation, revocation and the login-failure counters, every time given by the caller."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from dal.database import open_pool
from dal.errors import NotFound
from dal.gateways import identity
from dal.gateways.identity import LockoutPolicy
from dal.settings import Settings
from tests.dal.conftest import make_user
from tests.test_session_state import SessionRun

NOW = datetime(2026, 12, 7, tzinfo=UTC)
MONTH = timedelta(days=30)
POLICY = LockoutPolicy(
    free_failures=2, first_lock_seconds=1.0, max_lock_seconds=4.0, window_seconds=3600
)


async def test_a_rotation_uses_the_token_up_and_moves_the_sessions_end(pool: Any) -> None:
    user = await make_user(pool)
    signed = await identity.start_session(pool, user=user, now=NOW, expires_at=NOW + MONTH)
    later = NOW + timedelta(days=1)
    rotated = await identity.rotate_refresh_token(
        pool, secret=signed.refresh_token, now=later, expires_at=later + MONTH
    )
    assert rotated is not None
    session, fresh = rotated
    assert session.id == signed.session.id and session.expires_at == later + MONTH
    again = await identity.rotate_refresh_token(
        pool, secret=signed.refresh_token, now=later, expires_at=later + MONTH
    )
    assert again is None
    found, used_at = await identity.get_refresh_token(pool, secret=signed.refresh_token)
    assert (found.id, used_at) == (session.id, later)
    assert (await identity.get_refresh_token(pool, secret=fresh))[1] is None


async def test_concurrent_rotations_of_one_token_give_one_new_token(pool: Any) -> None:
    user = await make_user(pool)
    signed = await identity.start_session(pool, user=user, now=NOW, expires_at=NOW + MONTH)
    results = await asyncio.gather(
        *(
            identity.rotate_refresh_token(
                pool, secret=signed.refresh_token, now=NOW, expires_at=NOW + MONTH
            )
            for _ in range(8)
        )
    )
    assert sum(r is not None for r in results) == 1


async def test_a_session_is_live_until_revoked_or_expired(pool: Any) -> None:
    user = await make_user(pool)
    signed = await identity.start_session(pool, user=user, now=NOW, expires_at=NOW + MONTH)
    sid = signed.session.id
    holder = await identity.get_session_user(pool, session_id=sid, user_id=user.id, now=NOW)
    assert holder.user.id == user.id and holder.expires_in == MONTH.total_seconds()
    with pytest.raises(NotFound):
        await identity.get_session_user(pool, session_id=sid, user_id=user.id, now=NOW + MONTH)
    other = await make_user(pool)
    with pytest.raises(NotFound):  # not the other user's
        await identity.get_session_user(pool, session_id=sid, user_id=other.id, now=NOW)
    revoked = await identity.revoke_session(pool, session_id=sid, now=NOW, reason="logout")
    assert revoked is not None and revoked.revoked_reason == "logout"
    assert await identity.revoke_session(pool, session_id=sid, now=NOW, reason="logout") is None
    with pytest.raises(NotFound):
        await identity.get_session_user(pool, session_id=sid, user_id=user.id, now=NOW)


async def test_setting_a_password_revokes_the_users_sessions_but_the_one_kept(pool: Any) -> None:
    user = await make_user(pool)
    sessions = [
        await identity.start_session(pool, user=user, now=NOW, expires_at=NOW + MONTH)
        for _ in range(3)
    ]
    kept = sessions[0].session.id
    revoked = await identity.set_password(
        pool,
        user_id=user.id,
        password_hash="h",
        now=NOW,
        reason="password_changed",
        keep_session=kept,
    )
    assert revoked == 2
    assert await identity.get_password_hash(pool, user_id=user.id) == "h"
    await identity.get_session_user(pool, session_id=kept, user_id=user.id, now=NOW)
    with pytest.raises(NotFound):
        await identity.set_password(
            pool,
            user_id=UUID(int=1),
            password_hash="h",
            now=NOW,
            reason="password_set",
        )


async def test_a_sign_in_deletes_the_users_expired_sessions(pool: Any) -> None:
    user = await make_user(pool)
    old = await identity.start_session(pool, user=user, now=NOW, expires_at=NOW + MONTH)
    await identity.start_session(pool, user=user, now=NOW + MONTH, expires_at=NOW + 2 * MONTH)
    with pytest.raises(NotFound):
        await identity.get_refresh_token(pool, secret=old.refresh_token)


async def test_failures_lock_after_the_free_ones_doubling_up_to_the_cap(pool: Any) -> None:
    async def attempt(at: datetime, client: str = "c") -> datetime | None:
        """Count an attempt (a failure until cleared); the lock it leaves, if any."""
        assert await identity.count_login_attempt(
            pool, username="u", client=client, now=at, policy=POLICY
        )
        return await identity.get_login_lock(pool, username="u", client=client, now=at)

    assert await attempt(NOW) is None
    assert await attempt(NOW) is None
    at, locks = NOW, []
    for _ in range(4):  # each one once the previous lock has ended
        lock = await attempt(at)
        assert lock is not None
        locks.append((lock - at).total_seconds())
        at = lock
    assert locks == [1, 2, 4, 4]
    assert await identity.get_login_lock(pool, username="u", client="d", now=at) is None
    # Stale after the window: the count starts again (free once more).
    assert await attempt(at + timedelta(seconds=3601)) is None
    await identity.clear_login_failures(pool, username="u", client="c")
    assert await attempt(at) is None


async def test_attempts_while_locked_are_not_counted(pool: Any) -> None:
    async def attempt(at: datetime) -> bool:
        return await identity.count_login_attempt(
            pool, username="u", client="c", now=at, policy=POLICY
        )

    assert [await attempt(NOW) for _ in range(3)] == [True, True, True]  # the third locks 1 s
    lock = await identity.get_login_lock(pool, username="u", client="c", now=NOW)
    assert lock == NOW + timedelta(seconds=1)
    assert not await attempt(NOW + timedelta(milliseconds=999))  # refused, the lock unchanged
    assert await identity.get_login_lock(pool, username="u", client="c", now=NOW) == lock
    assert await attempt(lock)  # the lock has ended: counted, and locks 2 s
    assert await identity.get_login_lock(pool, username="u", client="c", now=lock) == (
        lock + timedelta(seconds=2)
    )


async def test_attempts_sent_at_once_are_each_counted_before_any_check(
    settings: Settings,
) -> None:
    """Twenty guesses at once from one address: only the free ones and the one that locks are
    let through to the password check (each counted first), not all twenty."""
    pools = [await open_pool(settings) for _ in range(2)]
    try:
        results = await asyncio.gather(
            *(
                identity.count_login_attempt(
                    pools[n % 2], username="u", client="c", now=NOW, policy=POLICY
                )
                for n in range(20)
            )
        )
    finally:
        for each in pools:
            await each.close()
    assert sum(results) == POLICY.free_failures + 1


async def session_exercise(pool: Any, settings: Settings, run: SessionRun) -> None:
    """Identity, for tests/test_session_state.py."""
    user = await run.one("make_user", lambda: make_user(pool))
    signed = await run.one(
        "start_session",
        lambda: identity.start_session(pool, user=user, now=NOW, expires_at=NOW + MONTH),
    )
    sid = signed.session.id
    await run(
        [
            (
                "upsert_password",
                lambda: identity.upsert_password(pool, user_id=user.id, password_hash="h", now=NOW),
            ),
            ("get_login", lambda: identity.get_login(pool, username=user.username)),
            ("get_password_hash", lambda: identity.get_password_hash(pool, user_id=user.id)),
            (
                "update_password_hash",
                lambda: identity.update_password_hash(
                    pool, user_id=user.id, old_hash="h", new_hash="h2"
                ),
            ),
            (
                "rotate_refresh_token",
                lambda: identity.rotate_refresh_token(
                    pool, secret=signed.refresh_token, now=NOW, expires_at=NOW + MONTH
                ),
            ),
            (
                "get_refresh_token",
                lambda: identity.get_refresh_token(pool, secret=signed.refresh_token),
            ),
            ("get_refresh_token unknown", lambda: identity.get_refresh_token(pool, secret="x")),
            (
                "get_session_user",
                lambda: identity.get_session_user(pool, session_id=sid, user_id=user.id, now=NOW),
            ),
            (
                "revoke_session",
                lambda: identity.revoke_session(pool, session_id=sid, now=NOW, reason="logout"),
            ),
            (
                "revoke_user_sessions",
                lambda: identity.revoke_user_sessions(
                    pool, user_id=user.id, now=NOW, reason="password_set"
                ),
            ),
            (
                "set_password",
                lambda: identity.set_password(
                    pool, user_id=user.id, password_hash="h3", now=NOW, reason="password_set"
                ),
            ),
            (
                "set_password missing user",
                lambda: identity.set_password(
                    pool, user_id=sid, password_hash="h3", now=NOW, reason="password_set"
                ),
            ),
            (
                "count_login_attempt",
                lambda: identity.count_login_attempt(
                    pool, username="x", client="y", now=NOW, policy=POLICY
                ),
            ),
            (
                "get_login_lock",
                lambda: identity.get_login_lock(pool, username="x", client="y", now=NOW),
            ),
            (
                "clear_login_failures",
                lambda: identity.clear_login_failures(pool, username="x", client="y"),
            ),
        ]
    )
