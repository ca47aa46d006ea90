"""Live events over server-sent events (app/routes/event_streams.py, app/event_hub.py), the app
served by uvicorn on this test's database, events appended through the gateways meanwhile:
replay then live, resume at random points under concurrent appends (seqs exactly contiguous,
nothing lost or doubled), another user's log is 404, a stalled subscriber is dropped while the
others go on, the listener comes back after its backend is killed (the streams catch up from
the log), heartbeats, a removed member's stream ends, the cap on streams, the app's stop."""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg
import httpx
import psycopg
import pytest

from app import event_hub
from app.event_hub import LISTENER_NAME, EventHub, Subscription, parse_payload
from dal import migrate
from dal.gateways import events, tasks, users
from dal.records.events import Event, EventDraft
from dal.records.tasks import TaskDraft
from dal.records.users import UserDraft
from dal.settings import Settings
from tests.app.conftest import MISSING_ID, Caller, assert_error, make_user
from tests.app.serving import serving
from tests.app.test_resilience import stop as stop_pg
from tests.support import embedded_server, wait_until

# Generous bounds of the waits (never asserted as speed: a slow machine only waits longer).
WAIT = 60.0


@dataclass
class Frame:
    """One server-sent event, or a comment (``comment`` set, the rest empty)."""

    id: int | None = None
    event: str | None = None
    data: Any = None
    comment: str | None = None


@dataclass
class Stream:
    """An open stream: its response and the frames read so far."""

    response: httpx.Response
    lines: AsyncIterator[str]
    frames: list[Frame] = field(default_factory=list)

    async def next(self) -> Frame | None:
        """The next event or comment; None once the stream has ended."""
        fields: dict[str, str] = {}
        try:
            async with asyncio.timeout(WAIT):
                async for line in self.lines:
                    if line == "":
                        if fields:
                            break
                        continue
                    if line.startswith(":"):
                        frame = Frame(comment=line[1:].strip())
                        self.frames.append(frame)
                        return frame
                    name, _, value = line.partition(": ")
                    fields[name] = value
                else:
                    return None
        except httpx.RemoteProtocolError:
            return None
        frame = Frame(int(fields["id"]), fields["event"], json.loads(fields["data"]))
        self.frames.append(frame)
        return frame

    async def events(self, count: int) -> list[Frame]:
        """The next ``count`` events (comments skipped)."""
        got: list[Frame] = []
        while len(got) < count:
            frame = await self.next()
            assert frame is not None, f"the stream ended after {len(got)} of {count} events"
            if frame.comment is None:
                got.append(frame)
        return got

    async def until_seq(self, seq: int) -> list[Frame]:
        """The events up to the one with this seq."""
        got: list[Frame] = []
        while not got or got[-1].id != seq:
            frame = await self.next()
            assert frame is not None, f"the stream ended before seq {seq}: {got[-1:]}"
            if frame.comment is None:
                got.append(frame)
        return got

    async def until_end(self) -> list[Frame]:
        """Every frame until the stream ends."""
        got: list[Frame] = []
        while (frame := await self.next()) is not None:
            got.append(frame)
        return got


@asynccontextmanager
async def stream(
    http: httpx.AsyncClient, url: str, caller: Caller, **headers: str
) -> AsyncIterator[Stream]:
    async with http.stream("GET", url, headers={**caller.headers, **headers}) as response:
        assert response.status_code == 200, await response.aread()
        yield Stream(response, response.aiter_lines())


def stream_url(kind: str, log_id: str, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"/v1/{kind}s/{log_id}/events/stream" + (f"?{query}" if query else "")


@contextmanager
def served(settings: Settings, **changes: Any) -> Iterator[tuple[str, httpx.Client]]:
    with (
        serving(settings.model_copy(update=changes)) as base,
        httpx.Client(base_url=base, timeout=WAIT) as http,
    ):
        yield base, http


def create_task(http: httpx.Client, caller: Caller) -> str:
    created = http.post("/v1/tasks", json={"kind": "research"}, headers=caller.headers)
    assert created.status_code == 201, created.text
    task_id: str = created.json()["id"]
    return task_id


def create_conversation(http: httpx.Client, caller: Caller) -> str:
    created = http.post("/v1/conversations", json={}, headers=caller.headers)
    assert created.status_code == 201, created.text
    conversation_id: str = created.json()["id"]
    return conversation_id


async def append(
    pool: asyncpg.Pool[Any], kind: str, log_id: str, count: int, *, pad: int = 0, n: int = 0
) -> list[int]:
    """Append ``count`` events (type step, payload {"n": ...}); their seqs."""
    drafts = [EventDraft(type="step", payload={"n": n + i, "pad": "x" * pad}) for i in range(count)]
    if kind == "task":
        done = await events.append_task_events(pool, task_id=UUID(log_id), events=drafts)
    else:
        owner = await pool.fetchval("SELECT user_id FROM conversations WHERE id = $1", UUID(log_id))
        done = await events.append_conversation_events(
            pool, user_id=owner, conversation_id=UUID(log_id), events=drafts
        )
    return [e.seq for e in done]


async def head(pool: asyncpg.Pool[Any], kind: str, log_id: str) -> int:
    """The log's last seq now."""
    last = 0
    while found := await events.list_events(
        pool,
        log="task" if kind == "task" else "conversation",
        log_id=UUID(log_id),
        after=last,
        limit=200,
    ):
        last = found[-1].seq
    return last


def alice_and_bob(http: httpx.Client, admin_token: str) -> tuple[Caller, Caller]:
    return (
        Caller(*make_user(http, "alice", admin_token=admin_token)),
        Caller(*make_user(http, "bob", admin_token=admin_token)),
    )


def admin_token(settings: Settings) -> str:
    assert settings.app_admin_token is not None
    return settings.app_admin_token.get_secret_value()


def assert_contiguous(seqs: list[int], first: int, last: int) -> None:
    assert seqs == list(range(first, last + 1)), seqs


# --- replay, then live ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["task", "conversation"])
async def test_stream_replays_the_log_then_sends_live_events(
    settings: Settings, pool: asyncpg.Pool[Any], kind: str
) -> None:
    with served(settings) as (base, http):
        alice, _ = alice_and_bob(http, admin_token(settings))
        log_id = create_task(http, alice) if kind == "task" else create_conversation(http, alice)
        before = await head(pool, kind, log_id)  # events written by the creation itself
        mine = await append(pool, kind, log_id, 3)
        assert_contiguous(mine, before + 1, before + 3)
        async with (
            httpx.AsyncClient(base_url=base, timeout=WAIT) as client,
            stream(client, stream_url(kind, log_id), alice) as live,
        ):
            content_type = live.response.headers["content-type"]
            assert content_type.startswith("text/event-stream")
            assert live.response.headers["cache-control"] == "no-store"
            replayed = await live.until_seq(before + 3)
            assert_contiguous([f.id for f in replayed if f.id], 1, before + 3)
            later = await append(pool, kind, log_id, 2, n=3)
            got = await live.until_seq(later[-1])
    assert_contiguous([f.id for f in got if f.id], before + 4, before + 5)
    frames = replayed[-3:] + got
    assert [f.event for f in frames] == ["step"] * 5
    assert [f.data["payload"]["n"] for f in frames] == [0, 1, 2, 3, 4]
    for f in frames:
        assert set(f.data) == {"seq", "type", "payload", "created_at"}
        assert f.data["seq"] == f.id and f.data["type"] == "step"


async def test_stream_starts_after_last_event_id_or_after(
    settings: Settings, pool: asyncpg.Pool[Any]
) -> None:
    with served(settings) as (base, http):
        alice, _ = alice_and_bob(http, admin_token(settings))
        task_id = create_task(http, alice)
        seqs = await append(pool, "task", task_id, 6)
        async with httpx.AsyncClient(base_url=base, timeout=WAIT) as client:
            async with stream(client, stream_url("task", task_id, after=str(seqs[2])), alice) as s:
                assert [f.id for f in await s.events(3)] == seqs[3:]
            # Last-Event-ID wins over ?after=.
            url = stream_url("task", task_id, after="0")
            async with stream(client, url, alice, **{"Last-Event-ID": str(seqs[4])}) as s:
                assert [f.id for f in await s.events(1)] == seqs[5:]
            # Past the head: only what comes next.
            url = stream_url("task", task_id, after=str(seqs[-1]))
            async with stream(client, url, alice) as s:
                more = await append(pool, "task", task_id, 1)
                assert [f.id for f in await s.events(1)] == more


# --- resume under concurrent appends ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["task", "conversation"])
async def test_stream_resumed_at_random_points_under_concurrent_appends_loses_and_doubles_nothing(
    settings: Settings, pool: asyncpg.Pool[Any], kind: str
) -> None:
    total = 600
    rng = random.Random(20261207)
    with served(settings) as (base, http):
        alice, _ = alice_and_bob(http, admin_token(settings))
        log_id = create_task(http, alice) if kind == "task" else create_conversation(http, alice)
        before = await head(pool, kind, log_id)

        async def appender() -> None:
            n = 0
            while n < total:
                size = rng.randint(1, 8)
                size = min(size, total - n)
                await append(pool, kind, log_id, size, n=n)
                n += size
                await asyncio.sleep(rng.random() * 0.005)

        received: list[int] = []
        connections = 0
        async with httpx.AsyncClient(base_url=base, timeout=WAIT) as client:
            appending = asyncio.create_task(appender())
            last = 0
            while last < before + total:
                connections += 1
                headers = {"Last-Event-ID": str(last)} if last and rng.random() < 0.7 else {}
                url = stream_url(kind, log_id, **({} if headers else {"after": str(last)}))
                async with stream(client, url, alice, **headers) as s:
                    # A random number of events, then the connection drops (closed mid-stream).
                    want = min(rng.randint(1, 120), before + total - last)
                    got = [f.id for f in await s.events(want)]
                assert got[0] == last + 1, (last, got[:3])
                received += [seq for seq in got if seq is not None]
                last = received[-1]
            await appending
    assert connections > 3
    assert_contiguous(received, 1, before + total)


# --- access ---------------------------------------------------------------------------------


async def test_stream_of_another_users_log_is_404_and_bad_resume_points_are_refused(
    settings: Settings,
) -> None:
    with served(settings) as (_, http):
        alice, bob = alice_and_bob(http, admin_token(settings))
        task_id = create_task(http, alice)
        conversation_id = create_conversation(http, alice)
        for url in (
            stream_url("task", task_id),
            stream_url("conversation", conversation_id),
            stream_url("task", MISSING_ID),
            stream_url("conversation", MISSING_ID),
        ):
            assert_error(http.get(url, headers=bob.headers), 404, "not_found")
        url = stream_url("task", task_id)
        for bad in ("x", "-1", "1.5", "99999999999999999999"):
            response = http.get(url, headers={**alice.headers, "Last-Event-ID": bad})
            assert_error(response, 400, "malformed_last_event_id")
            assert_error(http.get(f"{url}?after={bad}", headers=alice.headers), 422)
        assert_error(http.get(url), 401)
        # HEAD answers the headers without a stream.
        head_response = http.head(url, headers=alice.headers)
        assert head_response.status_code == 200
        assert head_response.headers["content-type"].startswith("text/event-stream")


async def test_removed_members_stream_ends_at_the_next_heartbeat(
    settings: Settings, pool: asyncpg.Pool[Any]
) -> None:
    with served(settings, app_event_stream_heartbeat_seconds=0.2) as (base, http):
        alice, bob = alice_and_bob(http, admin_token(settings))
        conversation_id = create_conversation(http, alice)
        added = http.post(
            f"/v1/conversations/{conversation_id}/members",
            json={"user_id": bob.id},
            headers=alice.headers,
        )
        assert added.status_code == 201, added.text
        async with (
            httpx.AsyncClient(base_url=base, timeout=WAIT) as client,
            stream(client, stream_url("conversation", conversation_id), bob) as s,
        ):
            seqs = await append(pool, "conversation", conversation_id, 1)
            await s.until_seq(seqs[-1])
            removed = http.delete(
                f"/v1/conversations/{conversation_id}/members/{bob.id}", headers=alice.headers
            )
            assert removed.status_code == 204, removed.text
            await s.until_end()  # (a bounded wait: Stream.next)


# --- heartbeats, the cap, the app's stop -------------------------------------------------------


@pytest.mark.parametrize("parser", ["httptools", "h11"])
async def test_heartbeat_comments_arrive_on_an_idle_stream(settings: Settings, parser: str) -> None:
    # The server's own deadlines for a client's request (its head, a kept-alive connection's
    # idleness) are far shorter than the stream: they do not apply while it is answered.
    with served(
        settings,
        app_http=parser,
        app_event_stream_heartbeat_seconds=0.1,
        app_header_timeout=0.2,
        app_keep_alive_timeout=0.2,
    ) as (base, http):
        alice, _ = alice_and_bob(http, admin_token(settings))
        task_id = create_task(http, alice)
        async with (
            httpx.AsyncClient(base_url=base, timeout=WAIT) as client,
            stream(client, stream_url("task", task_id, after="1000000"), alice) as s,
        ):
            beats = 0
            while beats < 6:
                frame = await s.next()
                assert frame is not None and frame.comment == "keep-alive", frame
                beats += 1


async def test_streams_past_the_cap_are_503_and_a_stream_past_its_lifetime_ends(
    settings: Settings,
) -> None:
    with served(settings, app_max_event_streams=1) as (base, http):
        alice, _ = alice_and_bob(http, admin_token(settings))
        task_id = create_task(http, alice)
        async with (
            httpx.AsyncClient(base_url=base, timeout=WAIT) as client,
            stream(client, stream_url("task", task_id), alice),
        ):
            refused = http.get(stream_url("task", task_id), headers=alice.headers)
            assert_error(refused, 503, "too_many_streams")
            assert int(refused.headers["retry-after"]) >= 1
        # The slot is given back with the stream.
        wait_until(
            lambda: (
                http.head(stream_url("task", task_id), headers=alice.headers).status_code == 200
            ),
            what="the stream's slot to be given back",
        )
    with served(settings, app_event_stream_max_seconds=0.2) as (base, http):
        async with (
            httpx.AsyncClient(base_url=base, timeout=WAIT) as client,
            stream(client, stream_url("task", task_id, after="1000000"), alice) as s,
        ):
            await s.until_end()


async def test_the_apps_stop_ends_its_streams(settings: Settings) -> None:
    changed = settings.model_copy(update={"app_event_stream_heartbeat_seconds": 3600.0})
    serve = serving(changed)
    base = serve.__enter__()
    stopping: asyncio.Future[None] | None = None
    try:
        with httpx.Client(base_url=base, timeout=WAIT) as http:
            alice, _ = alice_and_bob(http, admin_token(settings))
            task_id = create_task(http, alice)
        async with (
            httpx.AsyncClient(base_url=base, timeout=WAIT) as client,
            stream(client, stream_url("task", task_id, after="1000000"), alice) as s,
        ):
            stopping = asyncio.ensure_future(asyncio.to_thread(serve.__exit__, None, None, None))
            await s.until_end()
        await stopping
    finally:
        if stopping is None:
            serve.__exit__(None, None, None)


# --- a stalled subscriber ---------------------------------------------------------------------


def _raw_stream(base: str, path: str, token: str) -> socket.socket:
    """A GET of the stream on a socket whose receive buffer is small, and nothing read."""
    where = urlsplit(base)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((where.hostname, where.port))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {where.netloc}\r\nAuthorization: Bearer {token}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    return sock


def _read_to_end(sock: socket.socket) -> bytes:
    sock.settimeout(WAIT)
    chunks = []
    while data := sock.recv(1 << 16):
        chunks.append(data)
    return b"".join(chunks)


async def test_stalled_subscriber_is_dropped_while_the_others_receive_everything(
    settings: Settings, pool: asyncpg.Pool[Any]
) -> None:
    batches, per_batch = 150, 10
    with served(
        settings,
        app_event_stream_buffer=50,
        app_send_timeout=600.0,
        app_event_stream_heartbeat_seconds=3600.0,
    ) as (base, http):
        alice, _ = alice_and_bob(http, admin_token(settings))
        task_id = create_task(http, alice)
        before = await head(pool, "task", task_id)
        path = stream_url("task", task_id, after=str(before))
        stalled = _raw_stream(base, path, alice.token)
        try:
            async with (
                httpx.AsyncClient(base_url=base, timeout=WAIT) as client,
                stream(client, path, alice) as reader,
            ):
                # The reader takes each batch before the next is appended (never 50 behind);
                # the stalled one reads nothing: 12 MB later, it is far more than 50 behind.
                for batch in range(batches):
                    seqs = await append(pool, "task", task_id, per_batch, pad=8000, n=batch)
                    await reader.until_seq(seqs[-1])
                read = [f.id for f in reader.frames if f.comment is None]
                assert_contiguous(read, before + 1, before + batches * per_batch)  # type: ignore[arg-type]
            raw = await asyncio.to_thread(_read_to_end, stalled)
        finally:
            stalled.close()
        # The stalled stream ended (the server closed it) short of the end, without a gap.
        got = [int(m) for m in re.findall(rb"^id: (\d+)$", raw, re.MULTILINE)]
        assert got and got[-1] < before + batches * per_batch, (len(got), got[-1:])
        assert_contiguous(got, before + 1, got[-1])
        assert raw.endswith(b"0\r\n\r\n")  # the response's end, not a cut connection
        # Its client resumes from the log with Last-Event-ID.
        async with (
            httpx.AsyncClient(base_url=base, timeout=WAIT) as client,
            stream(
                client, stream_url("task", task_id), alice, **{"Last-Event-ID": str(got[-1])}
            ) as resumed,
        ):
            rest = await resumed.until_seq(before + batches * per_batch)
        assert_contiguous([f.id for f in rest], got[-1] + 1, before + batches * per_batch)  # type: ignore[misc]


# --- the listener comes back ------------------------------------------------------------------


def _listener_pids(database_url: str) -> list[int]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            (LISTENER_NAME,),
        ).fetchall()
    return [int(r[0]) for r in rows]


async def test_listener_killed_reconnects_and_streams_catch_up_from_the_log(
    settings: Settings, pool: asyncpg.Pool[Any]
) -> None:
    assert settings.database_url is not None
    url = settings.database_url
    # No heartbeat during the test: what the stream receives comes through the hub.
    with served(settings, app_event_stream_heartbeat_seconds=3600.0) as (base, http):
        alice, _ = alice_and_bob(http, admin_token(settings))
        task_id = create_task(http, alice)
        wait_until(lambda: len(_listener_pids(url)) == 1, what="the listener", timeout=WAIT)
        (first_pid,) = _listener_pids(url)
        async with (
            httpx.AsyncClient(base_url=base, timeout=WAIT) as client,
            stream(client, stream_url("task", task_id), alice) as s,
        ):
            seqs = await append(pool, "task", task_id, 2)
            await s.until_seq(seqs[-1])
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("SELECT pg_terminate_backend(%s)", (first_pid,))
            # Appended while nobody listens (or just after): their notifications are lost.
            missed = await append(pool, "task", task_id, 3, n=2)
            wait_until(
                lambda: [p for p in _listener_pids(url) if p != first_pid] != [],
                what="the listener to reconnect",
                timeout=WAIT,
            )
            got = await s.until_seq(missed[-1])
            later = await append(pool, "task", task_id, 2, n=5)
            got += await s.until_seq(later[-1])
    assert_contiguous([f.id for f in got], seqs[-1] + 1, later[-1])  # type: ignore[misc]


# --- the hub itself ---------------------------------------------------------------------------


def test_notification_payloads_are_parsed_or_ignored() -> None:
    log_id = UUID("01a24d03-4323-7687-b532-84e6cb8fb8b8")
    assert parse_payload(f"task:{log_id}:7") == (("task", log_id), 7)
    assert parse_payload(f"conversation:{log_id}:1") == (("conversation", log_id), 1)
    for bad in ("", "task", f"thread:{log_id}:1", "task:nope:1", f"task:{log_id}:", "task:1:x"):
        assert parse_payload(bad) is None, bad


def _event(seq: int) -> Event:
    return Event(seq=seq, type="step", payload={}, created_at=datetime.now(UTC))


def test_subscription_buffers_up_to_its_capacity_then_is_dropped() -> None:
    subscription = Subscription(("task", UUID(MISSING_ID)), sent=2, capacity=3)
    assert subscription.offer(_event(2))  # already sent: not buffered
    for seq in (3, 4, 5):
        assert subscription.offer(_event(seq))
    assert subscription.offer(_event(5))  # already buffered
    assert [e.seq for e in subscription.take()] == [3, 4, 5]
    subscription.sent = 5
    for seq in (6, 7, 8):
        assert subscription.offer(_event(seq))
    assert not subscription.offer(_event(9))
    assert subscription.dropped and subscription.ended and subscription.take() == []


async def test_hub_reads_a_burst_once_for_all_its_subscribers(
    settings: Settings, pool: asyncpg.Pool[Any]
) -> None:
    user = await users.insert_user(pool, draft=UserDraft(username="ops"))
    task = await tasks.insert_task(pool, user_id=user.id, draft=TaskDraft(kind="k"))
    before = await head(pool, "task", str(task.id))
    async with event_hub.listening(EventHub(settings, pool)) as hub:
        for _ in range(int(WAIT / 0.05)):
            if hub.listening:
                break
            await asyncio.sleep(0.05)
        assert hub.listening
        subscribers = [hub.subscribe(("task", task.id), before) for _ in range(3)]
        # 50 events in one transaction: 50 notifications arrive together at its commit.
        async with pool.acquire() as conn, conn.transaction():
            drafts = [EventDraft(type="step", payload={"n": n}) for n in range(50)]
            await events.append_task_events(conn, task_id=task.id, events=drafts)
        for subscription in subscribers:
            got: list[int] = []
            async with asyncio.timeout(WAIT):
                while len(got) < 50:
                    await subscription.wait(WAIT)
                    got += [e.seq for e in subscription.take()]
            assert_contiguous(got, before + 1, before + 50)
        assert hub.reads < 10, hub.reads  # neither one per notification nor per subscriber


# --- a database restart -----------------------------------------------------------------------


@pytest.fixture
def own_pg() -> Iterator[Any]:
    """An embedded server of this test's own, migrated: it is stopped and started again."""
    with embedded_server(prefix="mnemo-sse-restart-") as server:
        migrate.apply(str(server.get_uri("postgres")))
        yield server


@pytest.fixture
def restart_settings(own_pg: Any, tmp_path: Path) -> Settings:
    return Settings(
        database_url=str(own_pg.get_uri("postgres")),
        db_min_connections=1,
        db_max_connections=4,
        db_connection_timeout=1.0,
        db_query_timeout=1.0,
        db_answer_margin=1.0,
        app_health_timeout=0.5,
        app_admin_token="restart-admin",  # type: ignore[arg-type]
        app_event_stream_heartbeat_seconds=3600.0,
        data_dir=tmp_path,
    )


async def test_stream_survives_a_database_restart_and_catches_up(
    own_pg: Any, restart_settings: Settings
) -> None:
    with served(restart_settings) as (base, http):
        alice = Caller(*make_user(http, "restart", admin_token="restart-admin"))
        task_id = create_task(http, alice)
        events_url = f"/v1/tasks/{task_id}/events"

        def post(n: int) -> int:
            body = {"events": [{"type": "step", "payload": {"n": n}}]}
            response = http.post(events_url, json=body, headers=alice.headers)
            assert response.status_code in (201, 503), response.text
            return int(response.json()["items"][-1]["seq"]) if response.status_code == 201 else 0

        first = post(0)
        async with (
            httpx.AsyncClient(base_url=base, timeout=WAIT) as client,
            stream(client, stream_url("task", task_id), alice) as s,
        ):
            await s.until_seq(first)
            await asyncio.to_thread(stop_pg, own_pg)
            await asyncio.to_thread(own_pg.ensure_postgres_running)
            # Appended as soon as the database answers again, before or after the listener
            # is back: the stream receives them either way, in order.
            seqs: list[int] = []

            def appended() -> bool:
                seq = post(1)  # 0 while the database is away (503)
                if seq:
                    seqs.append(seq)
                return bool(seq)

            wait_until(appended, what="the database to answer again", timeout=WAIT)
            seqs.append(post(2))
            got = await s.until_seq(seqs[-1])
    assert_contiguous([f.id for f in got], first + 1, seqs[-1])  # type: ignore[misc]
