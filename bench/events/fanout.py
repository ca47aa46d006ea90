"""Event logs through a Mnemo server process: the replay over HTTP, and the live fan-out of one
event to many SSE subscribers.

The server is ``python -m bench.http.serve mnemo`` (uvicorn, as ``make run`` serves it), the
one the attachments suite starts. The replay reads the whole log with ``GET
/v1/tasks/{id}/events?after=&limit=`` on a keep-alive httpx connection, the JSON parsed.

The fan-out: ``--events-subscribers`` clients each hold ``GET /v1/tasks/{id}/events/stream``
open (plain asyncio sockets, HTTP/1.1, so that 200 of them cost the measuring process little),
all started after the log's head. A warm-up event is appended and awaited by all (every
stream is live); then ``--events-fanouts`` events, one at a time, each appended by the
gateway (a worker's append) in this process. A delivery's latency runs from the moment the
append returned (its commit acknowledged) to the moment the subscriber's socket produced the
bytes holding the event's unique nonce, as this process's event loop saw it (so it includes
the time the loop spends reading the other streams). Beside it, the same event's NOTIFY on
``mnemo_events`` received by a plain asyncpg LISTEN connection: the database's part.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx
import orjson

from bench._report import log
from bench.events.logs import Fixture, Result, measure_replays, replay_mnemo, replay_raw
from dal.gateways import events
from dal.records.events import EventDraft

STREAM_PATH = "/v1/tasks/{task_id}/events/stream"
EVENTS_PATH = "/v1/tasks/{task_id}/events"
DELIVERY_TIMEOUT = 30.0


async def replay_http(client: httpx.AsyncClient, task_id: UUID, page: int) -> int:
    after, count = 0, 0
    while True:
        answer = await client.get(
            EVENTS_PATH.format(task_id=task_id), params={"after": after, "limit": page}
        )
        if answer.status_code != 200:
            raise RuntimeError(f"GET events: {answer.status_code} {answer.text[:300]}")
        got = orjson.loads(answer.content)
        if not got["items"]:
            return count
        count += len(got["items"])
        after = got["items"][-1]["seq"]
        if after >= got["last_seq"]:
            return count


async def measure_replay(
    base: str, pools: dict[str, Any], fixture: Fixture, args: argparse.Namespace
) -> Result:
    """Replays of the fixture's log: the gateway, raw asyncpg, and HTTP when the route is
    there (a 404 or 405 leaves it out, with a line saying so)."""
    result = Result(
        "replay",
        f"replay of {args.events_log:,} events, pages of {args.events_page}",
        "replays/s",
        None,
    )
    task_id, user_id, page = fixture.replay_task_id, fixture.user_id, args.events_page
    replays = {
        "raw": lambda: replay_raw(pools["raw"], user_id, task_id, page),
        "mnemo": lambda: replay_mnemo(pools["mnemo"], user_id, task_id, page),
    }
    headers = {"Authorization": f"Bearer {fixture.secret}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        probe = await client.get(EVENTS_PATH.format(task_id=task_id), params={"limit": 1})
        if probe.status_code == 200:
            result.samples["http"] = []
            replays["http"] = lambda: replay_http(client, task_id, page)
        else:
            log(
                f"events: GET {EVENTS_PATH} answered {probe.status_code}: the replay over HTTP "
                "is left out (has the route landed?)"
            )
        await measure_replays(replays, args.events_log, args, result)
    return result


# --- the fan-out ------------------------------------------------------------------------


@dataclass
class Fanout:
    subscribers: int
    fanouts: int
    # delivery latencies in ms, from the append's return, over all events and subscribers
    latencies: list[float] = field(default_factory=list)
    # the same from the append's start (the commit is somewhere in between)
    latencies_from_start: list[float] = field(default_factory=list)
    append_ms: list[float] = field(default_factory=list)
    # the NOTIFY reaching a plain asyncpg listener, from the append's start
    notify_ms: list[float] = field(default_factory=list)
    missed: int = 0  # deliveries that did not come within DELIVERY_TIMEOUT
    skipped: str | None = None

    @staticmethod
    def _p(samples: list[float], q: float) -> float:
        ordered = sorted(samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def p(self, q: float, which: str = "latencies") -> float:
        return self._p(getattr(self, which), q)

    def as_json(self) -> dict[str, Any]:
        if self.skipped:
            return {"skipped": self.skipped}
        return {
            "subscribers": self.subscribers,
            "events": self.fanouts,
            "deliveries": len(self.latencies),
            "missed": self.missed,
            "p50_ms": round(self.p(0.5), 2),
            "p95_ms": round(self.p(0.95), 2),
            "max_ms": round(max(self.latencies), 2),
            "p95_from_append_start_ms": round(self.p(0.95, "latencies_from_start"), 2),
            "append_median_ms": round(statistics.median(self.append_ms), 2),
            "notify_from_append_start_p50_ms": round(self.p(0.5, "notify_ms"), 2)
            if self.notify_ms
            else None,
            "notify_from_append_start_p95_ms": round(self.p(0.95, "notify_ms"), 2)
            if self.notify_ms
            else None,
        }


class Subscriber:
    """One SSE stream over a raw socket: it notes when the current nonce shows up."""

    def __init__(self, state: _State) -> None:
        self.state = state
        self.seen: set[bytes] = set()

    async def run(self, host: str, port: int, path: str, secret: str) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Authorization: Bearer {secret}\r\nAccept: text/event-stream\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            if status != 200:
                raise RuntimeError(f"stream answered {status}")
            tail = b""
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                now = time.perf_counter()
                buffer = tail + data
                for nonce in self.state.nonces:
                    if nonce not in self.seen and nonce in buffer:
                        self.seen.add(nonce)
                        self.state.arrived(nonce, now)
                tail = buffer[-64:]
        finally:
            writer.close()


class _State:
    def __init__(self, subscribers: int) -> None:
        self.subscribers = subscribers
        self.nonces: list[bytes] = []
        self.arrivals: dict[bytes, list[float]] = {}
        self.complete: dict[bytes, asyncio.Event] = {}

    def expect(self, nonce: bytes) -> None:
        self.nonces = [nonce]
        self.arrivals[nonce] = []
        self.complete[nonce] = asyncio.Event()

    def arrived(self, nonce: bytes, at: float) -> None:
        times = self.arrivals[nonce]
        times.append(at)
        if len(times) == self.subscribers:
            self.complete[nonce].set()


async def probe_stream(host: str, port: int, path: str, secret: str) -> int:
    """The status the stream route answers (404/405: it is not there)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {secret}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        return int(head.split(b" ", 2)[1])
    finally:
        writer.close()


async def measure_fanout(
    url: str, port: int, pools: dict[str, Any], fixture: Fixture, args: argparse.Namespace
) -> Fanout:
    import asyncpg

    from bench.events.logs import new_task

    n = args.events_subscribers
    outcome = Fanout(n, args.events_fanouts)
    pool = pools["mnemo"]
    task_id = await new_task(pool, fixture.user_id, "watched")
    head = (await events.list_task_events(pool, user_id=None, task_id=task_id, limit=1)).last_seq
    path = STREAM_PATH.format(task_id=task_id) + f"?after={head}"
    host = "127.0.0.1"
    status = await probe_stream(host, port, path, fixture.secret)
    if status != 200:
        outcome.skipped = (
            f"GET {STREAM_PATH} answered {status}: the SSE route has not landed; "
            "the fan-out is skipped"
        )
        log("events: " + outcome.skipped)
        return outcome
    state = _State(n)
    notified: dict[str, float] = {}
    listener = await asyncpg.connect(url)

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        notified.setdefault(payload, time.perf_counter())

    await listener.add_listener("mnemo_events", on_notify)
    streams = [
        asyncio.create_task(Subscriber(state).run(host, port, path, fixture.secret))
        for _ in range(n)
    ]
    try:

        async def one(measured: bool) -> None:
            nonce = secrets.token_hex(12).encode()
            state.expect(nonce)
            draft = EventDraft(type="tool.output", payload={"nonce": nonce.decode(), "ok": True})
            start = time.perf_counter()
            [event] = await events.append_task_events(pool, task_id=task_id, events=[draft])
            returned = time.perf_counter()
            try:
                await asyncio.wait_for(state.complete[nonce].wait(), DELIVERY_TIMEOUT)
            except TimeoutError:
                if not measured:
                    failed = [s for s in streams if s.done()]
                    reason = repr(failed[0].exception()) if failed and failed[0].exception() else ""
                    raise RuntimeError(
                        f"{len(state.arrivals[nonce])} of {n} subscribers got the warm-up event "
                        f"within {DELIVERY_TIMEOUT:.0f} s {reason}"
                    ) from None
                outcome.missed += n - len(state.arrivals[nonce])
            if measured:
                outcome.latencies += [(t - returned) * 1000 for t in state.arrivals[nonce]]
                outcome.latencies_from_start += [(t - start) * 1000 for t in state.arrivals[nonce]]
                outcome.append_ms.append((returned - start) * 1000)
                at = notified.get(f"task:{task_id}:{event.seq}")
                if at is not None:
                    outcome.notify_ms.append((at - start) * 1000)

        await one(measured=False)  # every stream is live once each has the warm-up event
        for i in range(args.events_fanouts):
            await asyncio.sleep(0.05)
            await one(measured=True)
            if i == 0 or (i + 1) % 10 == 0:
                log(
                    f"events, fan-out to {n}: {i + 1}/{args.events_fanouts} events, "
                    f"p95 so far {outcome.p(0.95):.1f} ms"
                )
    finally:
        for stream in streams:
            stream.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
        await listener.close()
    return outcome
