"""Runtime profiles beyond one statement: key rotation (every secret re-encrypted with the
first key, in batches, resumable, never overwriting a concurrent update, an undecryptable
secret named by its profile's id) and the Resolver's cache (dropped on a change made from any
connection, not used while its listener is down)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from dal import migrate
from dal.database import init_connection, open_pool
from dal.gateways import profiles
from dal.records.profiles import ProfileDraft, ProfilePatch
from dal.records.users import User
from dal.settings import Settings
from dal.usecases import profiles as usecase
from dal.usecases.profiles import LISTENER_NAME, Resolver, Rotation, rotate_secrets
from dal.vault import Vault
from tests.app.test_resilience import stop
from tests.dal.conftest import make_user
from tests.support import embedded_server
from tests.test_session_state import SessionRun

SECRET = "sk-rotate-0123456789abcdef-q7r8"
OLD, NEW, LOST = (Fernet.generate_key().decode() for _ in range(3))


def vault_of(settings: Settings, keys: str) -> Vault:
    return Vault.from_settings(
        settings.model_copy(update={"mnemo_encryption_key": SecretStr(keys)})
    )


def llm(name: str, secret: str = SECRET, model: str = "gpt-x") -> ProfileDraft:
    return ProfileDraft(
        kind="llm",
        name=name,
        settings={"provider": "openai", "model": model},
        secrets={"api_key": secret},
    )


@pytest.fixture(autouse=True)
def no_llm_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("LLM_PROVIDER", "LLM_BASE_URL", "LLM_MODEL", "LLM_API_KEY"):
        monkeypatch.delenv(var, raising=False)


async def stored_rows(pool: Any) -> dict[UUID, str]:
    """Every profile's whole row as text, straight from the table."""
    rows = await pool.fetch("SELECT p.id, row_to_json(p)::text AS row FROM profiles AS p")
    return {row["id"]: row["row"] for row in rows}


async def ciphertexts(pool: Any) -> dict[UUID, str]:
    rows = await pool.fetch("SELECT id, secrets -> 'api_key' ->> 'ciphertext' AS c FROM profiles")
    return {row["id"]: row["c"] for row in rows}


def under(key: str, token: str) -> bool:
    try:
        Fernet(key).decrypt(token.encode())
    except Exception:
        return False
    return True


async def test_rotation_reencrypts_every_secret_with_the_first_key_and_both_read_meanwhile(
    pool: Any, settings: Settings, alice: User, bob: User, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    old = vault_of(settings, OLD)
    made = [
        await profiles.insert_profile(pool, old, user_id=alice.id, draft=llm("a")),
        await profiles.insert_profile(pool, old, user_id=bob.id, draft=llm("b")),
        await profiles.insert_profile(pool, old, user_id=None, draft=llm("system")),
    ]
    await profiles.insert_profile(
        pool,
        old,
        user_id=alice.id,
        draft=ProfileDraft(
            kind="llm", name="no secret", settings={"provider": "openai", "model": "m"}
        ),
    )
    before = await pool.fetch("SELECT id, secrets, updated_at FROM profiles ORDER BY id")
    both = vault_of(settings, f"{NEW},{OLD}")
    for profile in made:
        await profiles.activate_profile(pool, user_id=profile.user_id, profile_id=profile.id)
    # During the rotation the app runs with NEW,OLD: what OLD wrote still reads.
    assert (await profiles.resolve(pool, both, kind="llm", user_id=alice.id)).secrets == {
        "api_key": SECRET
    }
    seen: list[int] = []
    totals = await rotate_secrets(pool, both, batch=2, on_batch=lambda t: seen.append(t.done))
    assert (totals.rotated, totals.already_current, totals.failed) == (3, 0, [])
    assert seen == [2, 3]
    for profile_id, token in (await ciphertexts(pool)).items():
        if profile_id in {p.id for p in made}:
            assert under(NEW, token) and not under(OLD, token)
    for row in (await stored_rows(pool)).values():
        assert SECRET not in row and "0123456789" not in row  # ciphertext only, still
    after = await pool.fetch("SELECT id, secrets, updated_at FROM profiles ORDER BY id")
    for was, now in zip(before, after, strict=True):
        assert was["updated_at"] <= now["updated_at"]
        for name, stored in was["secrets"].items():  # the hint and set_at kept
            assert {k: v for k, v in now["secrets"][name].items() if k != "ciphertext"} == {
                k: v for k, v in stored.items() if k != "ciphertext"
            }
    # The old key can go: the new one alone reads everything.
    new_only = vault_of(settings, NEW)
    for profile in made:
        resolved = await profiles.resolve(pool, new_only, kind="llm", user_id=profile.user_id)
        assert resolved.secrets == {"api_key": SECRET}
    again = await rotate_secrets(pool, both)
    assert (again.rotated, again.already_current, again.failed) == (0, 3, [])
    assert SECRET not in caplog.text


async def test_an_interrupted_rotation_resumes_where_it_stopped(
    pool: Any, settings: Settings
) -> None:
    old = vault_of(settings, OLD)
    for number in range(5):
        user = await make_user(pool)
        await profiles.insert_profile(pool, old, user_id=user.id, draft=llm(f"p{number}"))
    both = vault_of(settings, f"{NEW},{OLD}")

    def stop(totals: Rotation) -> None:
        raise KeyboardInterrupt  # as Ctrl-C after the first batch

    with pytest.raises(KeyboardInterrupt):
        await rotate_secrets(pool, both, batch=2, on_batch=stop)
    tokens = list((await ciphertexts(pool)).values())
    assert sorted(under(NEW, token) for token in tokens) == [False, False, False, True, True]
    totals = await rotate_secrets(pool, both, batch=2)
    assert (totals.rotated, totals.already_current, totals.failed) == (3, 2, [])
    assert all(under(NEW, token) for token in (await ciphertexts(pool)).values())


async def test_a_secret_no_key_decrypts_is_named_by_its_profile_and_the_rest_rotate(
    pool: Any, settings: Settings, alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    lost = await profiles.insert_profile(
        pool, vault_of(settings, LOST), user_id=alice.id, draft=llm("lost")
    )
    kept = await profiles.insert_profile(
        pool, vault_of(settings, OLD), user_id=alice.id, draft=llm("kept")
    )
    before = await ciphertexts(pool)
    totals = await rotate_secrets(pool, vault_of(settings, f"{NEW},{OLD}"))
    assert (totals.rotated, totals.already_current, totals.failed) == (1, 0, [lost.id])
    after = await ciphertexts(pool)
    assert after[lost.id] == before[lost.id]  # left as it was
    assert under(NEW, after[kept.id])
    assert SECRET not in caplog.text


async def test_rotation_never_overwrites_a_concurrent_update(
    pool: Any, settings: Settings, alice: User, database_url: str
) -> None:
    old = vault_of(settings, OLD)
    made = await profiles.insert_profile(pool, old, user_id=alice.id, draft=llm("a"))
    await profiles.activate_profile(pool, user_id=alice.id, profile_id=made.id)
    both = vault_of(settings, f"{NEW},{OLD}")
    other: asyncpg.Connection[Any] = await asyncpg.connect(database_url)
    try:
        await init_connection(other)
        updating = other.transaction()
        await updating.start()
        # An app still on OLD changes the secret; its transaction holds the row.
        await profiles.update_profile(
            other,
            old,
            user_id=alice.id,
            profile_id=made.id,
            patch=ProfilePatch(secrets={"api_key": "sk-changed-meanwhile-0000-t5u6"}),
        )
        rotation = asyncio.create_task(rotate_secrets(pool, both))
        # The rotation waits for the row's lock.
        await eventually(lambda: lock_waits(pool), "the rotation waiting for the row")
        assert not rotation.done()
        await updating.commit()
        totals = await rotation
    finally:
        await other.close()
    assert totals.rotated == 1
    resolved = await profiles.resolve(pool, vault_of(settings, NEW), kind="llm", user_id=alice.id)
    assert resolved.secrets == {"api_key": "sk-changed-meanwhile-0000-t5u6"}


@contextlib.asynccontextmanager
async def cached(settings: Settings, pool: Any) -> AsyncIterator[Resolver]:
    """A Resolver keeping entries 60 s, its listener connected. Made after a test's set-up:
    the notifications of changes committed before it listened never reach it."""
    kept = settings.model_copy(update={"app_profile_cache_seconds": 60.0})
    async with Resolver(kept, pool, vault_of(settings, OLD)).running() as running:
        await eventually(lambda: running.trusted, "the listener")
        yield running


async def eventually(predicate: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    """Return once ``predicate()`` is true (polled: a listener's or the database's state, no
    event to wait on); AssertionError after 30 s."""

    async def holds() -> bool:
        answer = predicate()
        return answer if isinstance(answer, bool) else await answer

    try:
        async with asyncio.timeout(30):
            while not await holds():  # noqa: ASYNC110 (no event to wait on)
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def lock_waits(pool: Any) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
    )


async def test_a_change_from_another_connection_drops_the_cached_resolution(
    pool: Any, settings: Settings, alice: User, bob: User, database_url: str
) -> None:
    old = vault_of(settings, OLD)
    own = await profiles.insert_profile(pool, old, user_id=alice.id, draft=llm("own"))
    await profiles.activate_profile(pool, user_id=alice.id, profile_id=own.id)
    system = await profiles.insert_profile(pool, old, user_id=None, draft=llm("system"))
    await profiles.activate_profile(pool, user_id=None, profile_id=system.id)
    async with cached(settings, pool) as resolver:
        await _change_from_another_connection(resolver, alice, bob, own.id, system.id, database_url)


async def _change_from_another_connection(
    resolver: Resolver, alice: User, bob: User, own: UUID, system: UUID, database_url: str
) -> None:
    first = await resolver.resolve(kind="llm", user_id=alice.id)
    assert first.source == "user" and first.settings["model"] == "gpt-x"
    assert await resolver.resolve(kind="llm", user_id=alice.id) is first  # kept
    bobs = await resolver.resolve(kind="llm", user_id=bob.id)
    assert bobs.source == "system" and len(resolver) == 2
    # psql-like: a plain connection, no Mnemo code.
    raw: asyncpg.Connection[Any] = await asyncpg.connect(database_url)
    try:
        await raw.execute(
            "UPDATE profiles SET settings = jsonb_set(settings, '{model}', '\"gpt-y\"') "
            "WHERE id = $1",
            own,
        )
        await eventually(lambda: len(resolver) == 1, "alice's entry dropped")
        assert (await resolver.resolve(kind="llm", user_id=alice.id)).settings["model"] == "gpt-y"
        assert await resolver.resolve(kind="llm", user_id=bob.id) is bobs  # bob's kept
        # A change to the system's profile drops every entry: everyone falls back to it.
        await raw.execute("UPDATE profiles SET active = false WHERE id = $1", system)
        await eventually(lambda: len(resolver) == 0, "every entry dropped")
    finally:
        await raw.close()
    assert (await resolver.resolve(kind="llm", user_id=bob.id)).source == "environment"


async def test_the_cache_is_not_used_while_its_listener_is_down(
    pool: Any, settings: Settings, alice: User
) -> None:
    made = await profiles.insert_profile(
        pool, vault_of(settings, OLD), user_id=alice.id, draft=llm("own")
    )
    await profiles.activate_profile(pool, user_id=alice.id, profile_id=made.id)
    async with cached(settings, pool) as resolver:
        await _listener_down(resolver, pool, alice)


async def _listener_down(resolver: Resolver, pool: Any, alice: User) -> None:
    first = await resolver.resolve(kind="llm", user_id=alice.id)
    assert await resolver.resolve(kind="llm", user_id=alice.id) is first
    killed = await pool.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = $1",
        LISTENER_NAME,
    )
    assert killed == 1
    await eventually(lambda: not resolver.trusted, "the listener's loss noticed")
    assert len(resolver) == 0
    down = await resolver.resolve(kind="llm", user_id=alice.id)
    if not resolver.trusted:  # (it may have reconnected meanwhile)
        assert await resolver.resolve(kind="llm", user_id=alice.id) is not down
    await eventually(lambda: resolver.trusted, "the listener back")
    back = await resolver.resolve(kind="llm", user_id=alice.id)
    assert await resolver.resolve(kind="llm", user_id=alice.id) is back


async def test_without_its_listener_or_with_no_cache_time_every_resolve_asks(
    pool: Any, settings: Settings, alice: User
) -> None:
    idle = Resolver(settings, pool, vault_of(settings, OLD))  # never running
    first = await idle.resolve(kind="llm", user_id=alice.id)
    assert await idle.resolve(kind="llm", user_id=alice.id) is not first
    assert len(idle) == 0
    off = settings.model_copy(update={"app_profile_cache_seconds": 0.0})
    async with Resolver(off, pool, vault_of(settings, OLD)).running() as uncached:
        await asyncio.sleep(0.1)
        assert not uncached.trusted
        first = await uncached.resolve(kind="llm", user_id=alice.id)
        assert await uncached.resolve(kind="llm", user_id=alice.id) is not first


async def test_with_postgresql_stopped_resolve_answers_from_the_environment_and_heals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LLM_PROVIDER", "ollama")
    monkeypatch.setenv("LLM_MODEL", "env-model")
    monkeypatch.setenv("LLM_API_KEY", "sk-from-the-environment-00-k1l2")
    with embedded_server(prefix="mnemo-profiles-stop-") as server:
        url = str(server.get_uri("postgres"))
        migrate.apply(url)
        settings = Settings(
            database_url=url,
            db_connection_timeout=1.0,
            db_query_timeout=1.0,
            app_health_timeout=0.5,
            app_profile_cache_seconds=60.0,
            data_dir=tmp_path,
            mnemo_encryption_key=SecretStr(OLD),
        )
        vault = Vault.from_settings(settings)
        pool = await open_pool(settings, lazy=True)
        try:
            user = await make_user(pool)
            made = await profiles.insert_profile(pool, vault, user_id=user.id, draft=llm("a"))
            await profiles.activate_profile(pool, user_id=user.id, profile_id=made.id)
            async with Resolver(settings, pool, vault).running() as resolver:
                await eventually(lambda: resolver.trusted, "the listener")
                assert (await resolver.resolve(kind="llm", user_id=user.id)).source == "user"
                assert len(resolver) == 1
                stop(server)  # a real stop: pg_ctl -m fast
                await eventually(lambda: not resolver.trusted, "the listener's loss noticed")
                assert len(resolver) == 0
                started = time.monotonic()
                fallback = await resolver.resolve(kind="llm", user_id=user.id)
                elapsed = time.monotonic() - started
                assert fallback.source == "environment"
                assert fallback.settings["model"] == "env-model"
                assert fallback.secrets == {"api_key": "sk-from-the-environment-00-k1l2"}
                assert "the database is unavailable" in caplog.text
                assert "sk-from-the-environment" not in caplog.text
                # Loosely bounded by DB_CONNECTION_TIMEOUT, as tests/app/test_resilience.py.
                assert elapsed < 3 * settings.db_connection_timeout + 2
                assert len(resolver) == 0  # a fallback is never kept
                server.ensure_postgres_running()
                await eventually(lambda: resolver.trusted, "the listener reconnected")
                healed = await resolver.resolve(kind="llm", user_id=user.id)
                assert (healed.source, healed.profile_id) == ("user", made.id)
        finally:
            async with asyncio.timeout(5):
                await pool.close()


async def session_exercise(pool: Any, settings: Settings, run: SessionRun) -> None:
    """Rotation and the cached resolver, for tests/test_session_state.py."""
    old = vault_of(settings, OLD)
    user = await run.one("make_user", lambda: make_user(pool))
    await run.one(
        "insert_profile",
        lambda: profiles.insert_profile(pool, old, user_id=user.id, draft=llm("rotated")),
    )
    both = vault_of(settings, f"{NEW},{OLD}")

    async def cached() -> None:
        cached = settings.model_copy(update={"app_profile_cache_seconds": 60.0})
        async with Resolver(cached, pool, both).running() as resolver:
            await eventually(lambda: resolver.trusted, "the listener")
            await resolver.resolve(kind="llm", user_id=user.id)
            await resolver.resolve(kind="llm", user_id=user.id)

    await run(
        [
            ("rotate_secrets", lambda: usecase.rotate_secrets(pool, both, batch=1)),
            ("count_profiles_with_secrets", lambda: profiles.count_profiles_with_secrets(pool)),
            ("Resolver", cached),
        ]
    )
