"""Cached authentication (app/token_cache.py) across two app processes on one database: a
token used on one process is served from its cache, and revoking it, deactivating its user or
its expiry refuses it on the very next request to the other process.

That the cache is really used is shown by a change that bypasses the triggers
(``session_replication_role = replica``, which fires no ordinary trigger): the process that
cached the token keeps accepting it, the one that did not refuses it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from app import token_cache
from app.token_cache import TokenCache, listening
from dal.errors import NotFound
from dal.gateways import users
from dal.records.users import TokenHolder, User, UserDraft, UserPatch
from dal.settings import Settings
from tests.app.conftest import ADMIN, ADMIN_TOKEN, auth, make_user
from tests.support import change_authentication, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
ME = "/v1/me"


def _listeners(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE application_name = 'mnemo-auth-listener' AND datname = current_database()"
            "   AND state = 'idle' AND query <> ''"
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def processes() -> list[subprocess.Popen[bytes]]:
    """The app processes ``apps`` starts, a then b."""
    return []


@pytest.fixture
def apps(
    database_url: str, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """Two `python -m app serve` processes on this test's database: clients of each."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "DB_"))}
    clients: list[httpx.Client] = []
    try:
        for name in ("a", "b"):
            port = free_port()
            with (tmp_path / f"{name}.log").open("wb") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "app", "serve"],
                    cwd=ROOT,
                    env={
                        **clean,
                        "DATABASE_URL": database_url,
                        "DATA_DIR": str(tmp_path),
                        "APP_PORT": str(port),
                        "APP_ADMIN_TOKEN": ADMIN_TOKEN,
                    },
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            processes.append(process)
            clients.append(httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10))
        for process, client in zip(processes, clients, strict=True):
            wait_until(lambda c=client, p=process: _healthy(c, p), what="the app to start")
        wait_until(lambda: _listeners(database_url) == 2, what="both apps to listen")
        yield clients[0], clients[1]
    finally:
        for client in clients:
            client.close()
        for process in processes:
            process.send_signal(signal.SIGCONT)  # in case a test left it stopped
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _healthy(client: httpx.Client, process: subprocess.Popen[bytes]) -> bool:
    assert process.poll() is None, "the app exited"
    try:
        return client.get("/health").status_code == 200
    except httpx.TransportError:
        return False


def _token(client: httpx.Client, owner: str, **body: object) -> dict[str, str]:
    response = client.post("/v1/tokens", json=body, headers=auth(owner))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _without_triggers(database_url: str, sql: str, *params: object) -> None:
    """Change the database as if nobody heard it: no trigger fires, so no NOTIFY."""
    with psycopg.connect(database_url) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(sql, params)  # type: ignore[arg-type]


def _me(client: httpx.Client, token: str) -> int:
    return client.get(ME, headers=auth(token)).status_code


def test_the_cache_serves_a_token_the_process_has_seen(
    apps: tuple[httpx.Client, httpx.Client], database_url: str
) -> None:
    a, b = apps
    _, owner = make_user(a, "alice")
    probe = _token(a, owner)
    assert _me(b, probe["token"]) == 200  # b looks it up, and keeps it

    _without_triggers(
        database_url, "UPDATE api_tokens SET revoked_at = now() WHERE id = %s", probe["id"]
    )

    assert _me(b, probe["token"]) == 200  # from b's cache: b asked nobody
    assert _me(a, probe["token"]) == 401  # a never cached it: it asks, and is refused


def test_revoked_on_one_process_refused_on_the_next_request_to_the_other(
    apps: tuple[httpx.Client, httpx.Client],
) -> None:
    a, b = apps
    _, owner = make_user(a, "alice")
    for _ in range(20):
        spare = _token(a, owner)
        assert _me(b, spare["token"]) == 200
        assert _me(b, spare["token"]) == 200  # cached by b

        assert a.delete(f"/v1/tokens/{spare['id']}", headers=auth(owner)).status_code == 204

        assert _me(b, spare["token"]) == 401
        assert _me(a, spare["token"]) == 401
    assert _me(b, owner) == 200


def test_signed_out_on_one_process_refused_on_the_next_request_to_the_other(
    apps: tuple[httpx.Client, httpx.Client],
) -> None:
    """An access token (a JWT, README "Identity") is cached by its session: a logout, a reuse
    of a refresh token or a password set on one process ends it on the other at once."""
    a, b = apps
    user, _ = make_user(a, "alice")
    password = {"password": "two processes"}
    assert (
        a.put(f"/v1/users/{user['id']}/password", json=password, headers=ADMIN).status_code == 204
    )

    def sign_in() -> dict[str, str]:
        response = a.post("/v1/auth/login", json={"username": "alice", **password})
        assert response.status_code == 200, response.text
        pair: dict[str, str] = response.json()
        assert _me(b, pair["access_token"]) == 200
        assert _me(b, pair["access_token"]) == 200  # cached by b
        return pair

    for _ in range(5):
        pair = sign_in()
        out = a.post("/v1/auth/logout", json={"refresh_token": pair["refresh_token"]})
        assert out.status_code == 204
        assert _me(b, pair["access_token"]) == 401
        assert _me(a, pair["access_token"]) == 401
    pair = sign_in()
    renewed = a.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).json()
    assert _me(b, renewed["access_token"]) == 200
    reused = a.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert reused.status_code == 401
    assert _me(b, renewed["access_token"]) == 401
    pair = sign_in()
    assert (
        a.put(f"/v1/users/{user['id']}/password", json=password, headers=ADMIN).status_code == 204
    )
    assert _me(b, pair["access_token"]) == 401


def test_revoked_while_the_other_process_is_stalled_refused_once_it_runs_again(
    apps: tuple[httpx.Client, httpx.Client], processes: list[subprocess.Popen[bytes]]
) -> None:
    """b cannot say it applied the change: a answers once b's last check is too old for b to
    use its entries, and b, running again, asks the database before it hears anything."""
    a, b = apps
    _, owner = make_user(a, "alice")
    spare = _token(a, owner)
    assert _me(b, spare["token"]) == 200
    assert _me(b, spare["token"]) == 200  # cached by b

    processes[1].send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert a.delete(f"/v1/tokens/{spare['id']}", headers=auth(owner)).status_code == 204
        assert time.monotonic() - started > token_cache.CHECK_EVERY  # it waited for b
    finally:
        processes[1].send_signal(signal.SIGCONT)

    assert _me(b, spare["token"]) == 401
    assert _me(b, owner) == 200


def test_deactivated_on_one_process_refused_on_the_next_request_to_the_other(
    apps: tuple[httpx.Client, httpx.Client],
) -> None:
    a, b = apps
    for n in range(10):
        user, token = make_user(a, f"user{n}")
        assert _me(b, token) == 200
        assert _me(b, token) == 200

        response = a.post(f"/v1/users/{user['id']}/deactivate", headers=ADMIN)
        assert response.status_code == 200, response.text

        assert _me(b, token) == 401


def test_profile_change_on_one_process_shows_on_the_next_request_to_the_other(
    apps: tuple[httpx.Client, httpx.Client],
) -> None:
    a, b = apps
    _, token = make_user(a, "alice")
    assert b.get(ME, headers=auth(token)).json()["display_name"] is None

    patched = a.patch(ME, json={"display_name": "Alice"}, headers=auth(token))
    assert patched.status_code == 200, patched.text

    assert b.get(ME, headers=auth(token)).json()["display_name"] == "Alice"


def test_a_cached_token_is_refused_once_it_expires(
    apps: tuple[httpx.Client, httpx.Client],
) -> None:
    a, b = apps
    _, owner = make_user(a, "alice")
    short = _token(a, owner, expires_in=2)
    assert _me(b, short["token"]) == 200  # cached, until its expiry at most

    wait_until(lambda: _me(b, short["token"]) == 401, timeout=10, what="the token to expire")
    assert _me(a, short["token"]) == 401


def test_an_expiry_moved_in_the_database_refuses_the_cached_token_at_once(
    apps: tuple[httpx.Client, httpx.Client], database_url: str
) -> None:
    a, b = apps
    user, owner = make_user(a, "alice")
    later = _token(a, owner, expires_in=3600)
    assert _me(b, later["token"]) == 200

    # As a script outside the app: the change, then the wait until every process applied it.
    change_authentication(
        database_url,
        "UPDATE api_tokens SET created_at = now() - interval '2 hours',"
        " expires_at = now() - interval '1 hour' WHERE id = %s",
        (later["id"],),
        user_id=user["id"],
    )

    assert _me(b, later["token"]) == 401


def test_a_listener_cut_off_turns_the_cache_off_until_it_is_back(
    apps: tuple[httpx.Client, httpx.Client], database_url: str
) -> None:
    a, b = apps
    _, owner = make_user(a, "alice")
    probe = _token(a, owner)
    assert _me(b, probe["token"]) == 200

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'mnemo-auth-listener' AND datname = current_database()"
        )
    # While nobody listens, nothing is trusted: b asks the database, which refuses a token
    # revoked unheard.
    _without_triggers(
        database_url, "UPDATE api_tokens SET revoked_at = now() WHERE id = %s", probe["id"]
    )
    wait_until(lambda: _me(b, probe["token"]) == 401, timeout=5, what="b to distrust its cache")
    # The listeners come back by themselves, and the cache works again.
    wait_until(lambda: _listeners(database_url) == 2, what="the listeners to reconnect")
    time.sleep(0.5)
    fresh = _token(a, owner)
    assert _me(b, fresh["token"]) == 200
    _without_triggers(
        database_url, "UPDATE api_tokens SET revoked_at = now() WHERE id = %s", fresh["id"]
    )
    assert _me(b, fresh["token"]) == 200  # from b's cache again


# --- the cache in this process, on the test's database -------------------------------------


async def _trusted(cache: TokenCache) -> None:
    for _ in range(3000):
        if cache.trusted:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the cache's listener did not connect within 30 s")


async def _issued(pool: Any, username: str) -> tuple[User, str]:
    created = await users.create_user(pool, draft=UserDraft(username=username))
    return created.user, created.token.secret


async def _user(cache: TokenCache, pool: Any, secret: str) -> User:
    """The cache's answer, asking ``pool`` when it must."""

    async def lookup() -> TokenHolder:
        return await users.get_user_by_token(pool, secret=secret)

    return await cache.user(users.hash_token(secret), lookup)


class _SlowListener(TokenCache):
    """A process that applies each notification a while after it arrives (as one busy)."""

    def _heard(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        heard = super()._heard
        asyncio.get_running_loop().call_later(0.3, heard, conn, pid, channel, payload)


async def test_every_change_waits_until_a_slow_process_applied_it(
    pool: Any, settings: Settings
) -> None:
    """The same change twice in a row, from the same backend (same notification): the second
    must wait for the slow process's answer to it, not take its answer to the first."""
    here, slow = TokenCache(settings, pool), _SlowListener(settings, pool)
    alice, secret = await _issued(pool, "alice")

    async with listening(here), listening(slow), pool.acquire() as conn:
        await _trusted(here)
        await _trusted(slow)
        for n in range(3):
            async with here.changing(alice.id):
                patch = UserPatch(display_name=f"Alice {n}")
                await users.update_user(conn, user_id=alice.id, patch=patch)
            assert (await _user(slow, pool, secret)).display_name == f"Alice {n}"
            assert len(slow) == 1  # kept: the next change must make it forget


async def test_a_lookup_overtaken_by_a_change_is_not_kept(pool: Any, settings: Settings) -> None:
    cache = TokenCache(settings, pool)
    alice, secret = await _issued(pool, "alice")
    calls = 0

    async def lookup() -> TokenHolder:
        nonlocal calls
        calls += 1
        answer = await users.get_user_by_token(pool, secret=secret)
        cache.forget_user(alice.id)  # as a notification arriving while the answer travels
        return answer

    async with listening(cache):
        await _trusted(cache)
        assert (await cache.user(users.hash_token(secret), lookup)).id == alice.id
        assert len(cache) == 0
        await cache.user(users.hash_token(secret), lookup)
    assert calls == 2


async def test_the_cache_keeps_at_most_max_entries_oldest_out_first(
    pool: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(token_cache, "MAX_ENTRIES", 3)
    cache = TokenCache(settings, pool)
    issued = [await _issued(pool, f"user{n}") for n in range(4)]

    async with listening(cache):
        await _trusted(cache)
        for _, secret in issued:
            await _user(cache, pool, secret)
        assert len(cache) == 3
        # Deactivate the first two unheard: only a lookup can tell.
        _without_triggers(
            settings.database_url or "",
            "UPDATE users SET deactivated_at = now() WHERE id = ANY(%s)",
            [issued[0][0].id, issued[1][0].id],
        )
        assert (await _user(cache, pool, issued[1][1])).id == issued[1][0].id  # cached
        with pytest.raises(NotFound):
            await _user(cache, pool, issued[0][1])  # the oldest went first: asked again


async def test_zero_seconds_turns_the_cache_off(pool: Any, settings: Settings) -> None:
    cache = TokenCache(settings.model_copy(update={"app_auth_cache_seconds": 0}), pool)
    _, secret = await _issued(pool, "alice")

    async with listening(cache):
        await asyncio.sleep(0.2)
        assert not cache.trusted
        await _user(cache, pool, secret)
        assert len(cache) == 0
