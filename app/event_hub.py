"""Live events of the logs (README "Live events"): one listening connection per app process,
fanned out to every stream of that process.

The database NOTIFYs channel ``mnemo_events`` at the commit of every append, with the payload
``conversation:<uuid>:<seq>`` or ``task:<uuid>:<seq>``, the seq of its last event (per log, in
seq order). An
``EventHub`` listens on it from a connection of its own, outside the pool (as the token cache
does, app/token_cache.py), and for a log that has subscribers reads the new events once, from
the pool (``events.list_events``), whatever the number of its subscribers: one read in flight
per log, and the notifications that arrive meanwhile only ask for one more read after it (a
burst of appends costs a few reads, not one each). Each subscriber (``Subscription``, one per
stream) gets the events in a buffer of at most APP_EVENT_STREAM_BUFFER events: a subscriber
that does not take them (its client reads nothing) is dropped when one more arrives (its
stream ends, its client resumes from the log with Last-Event-ID), so a slow client neither
grows the process's memory nor delays the others.

While the listener is away (the database restarted, the connection cut) notifications are
lost: it reconnects with backoff, and once listening again reads every subscribed log from
the last event it delivered (the subscribers catch up from the log). A check on the connection
every ``CHECK_EVERY`` seconds, bounded by APP_HEALTH_TIMEOUT, finds a connection that died
silently. The streams themselves (app/routes/event_streams.py) never rely on the hub alone:
they replay from the log before the live events, fill any gap in seqs from the log, and look
at the log again at each heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

import asyncpg

from dal.database import database_url
from dal.errors import DomainError
from dal.gateways import events, meta
from dal.records.events import MAX_EVENTS_PER_APPEND, Event
from dal.settings import Settings

_log = logging.getLogger(__name__)

CHANNEL = "mnemo_events"
# The listeners' application_name (to find them in pg_stat_activity).
LISTENER_NAME = "mnemo-event-listener"
# How often the listener proves its connection alive (its check bounded by APP_HEALTH_TIMEOUT).
CHECK_EVERY = 2.0
# Reconnecting, and retrying a failed read: the first wait, doubled up to the last.
RETRY_FIRST, RETRY_MOST = 0.2, 5.0
# Events one read of a log takes (the read repeats while pages come back full).
READ_PAGE = 200

LogKind = Literal["conversation", "task"]
LogKey = tuple[LogKind, UUID]
_KINDS: dict[str, LogKind] = {"conversation": "conversation", "task": "task"}


def parse_payload(payload: str) -> tuple[LogKey, int] | None:
    """(log, seq) of a notification's payload ``<kind>:<uuid>:<seq>``; None if it is not one."""
    kind, _, rest = payload.partition(":")
    log_id, _, seq = rest.partition(":")
    if kind not in _KINDS or not seq.isdigit():
        return None
    try:
        return (_KINDS[kind], UUID(log_id)), int(seq)
    except ValueError:
        return None


class Subscription:
    """One stream's place at the hub: the live events of one log, in a bounded buffer.

    ``sent`` is the last seq the stream delivered (its owner advances it, the replay included):
    events at or below it are not buffered again. Once ``ended`` (dropped for overflowing, the
    hub closed, or unsubscribed) it receives nothing more."""

    def __init__(self, key: LogKey, sent: int, capacity: int) -> None:
        self.key = key
        self.sent = sent
        self.capacity = capacity
        self.dropped = False
        self.ended = False
        self._buffer: deque[Event] = deque()
        self._ready = asyncio.Event()

    def offer(self, event: Event) -> bool:
        """Buffer one live event (False: the buffer was full, the subscriber is dropped)."""
        if self.ended or event.seq <= self.sent:
            return True
        if self._buffer and event.seq <= self._buffer[-1].seq:
            return True  # already buffered (a read repeated after a reconnect)
        if len(self._buffer) >= self.capacity:
            self.dropped = True
            self.end()
            return False
        self._buffer.append(event)
        self._ready.set()
        return True

    def end(self) -> None:
        self.ended = True
        self._buffer.clear()
        self._ready.set()

    def take(self) -> list[Event]:
        """The buffered events after ``sent``, oldest first (the buffer is emptied)."""
        taken = [e for e in self._buffer if e.seq > self.sent]
        self._buffer.clear()
        if not self.ended:
            self._ready.clear()
        return taken

    async def wait(self, timeout: float) -> None:
        """Until an event is buffered or the subscription ends, at most ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._ready.wait()


@dataclass
class _Log:
    """A log with subscribers: its last event read and delivered (None until the first
    notification or catch-up says where to start), whether a read is wanted and which runs."""

    subscribers: set[Subscription] = field(default_factory=set)
    read: int | None = None
    wanted: bool = False
    reader: asyncio.Task[None] | None = None


class EventHub:
    """The process's live events: ``subscribe``/``unsubscribe`` for streams, ``run()`` the
    listener (a task of the app's life, see ``listening``), ``close()`` ends every stream."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool[Any]) -> None:
        self._settings = settings
        self._pool = pool
        self._logs: dict[LogKey, _Log] = {}
        self.closed = False
        # Whether the listener is connected and listening now.
        self.listening = False
        # How many times it (re)connected, and subscribers dropped for overflowing (for tests
        # and logs).
        self.connects = 0
        self.dropped = 0
        # Reads of the logs (one per page), however many notifications and subscribers.
        self.reads = 0
        # Streams served now (``take_slot``), at most APP_MAX_EVENT_STREAMS.
        self.streams = 0
        self._readers: set[asyncio.Task[None]] = set()

    def take_slot(self) -> bool:
        """Count one more stream, unless the process serves APP_MAX_EVENT_STREAMS already or
        is stopping (False)."""
        if self.closed or self.streams >= self._settings.app_max_event_streams:
            return False
        self.streams += 1
        return True

    def give_back_slot(self) -> None:
        self.streams -= 1

    # --- subscribers -------------------------------------------------------------------------

    def subscribe(self, key: LogKey, sent: int) -> Subscription:
        """A subscription to the log's events after ``sent``, buffered from now on (before the
        stream's replay reads the log, so that nothing committed meanwhile is missed)."""
        subscription = Subscription(key, sent, self._settings.app_event_stream_buffer)
        if self.closed:
            subscription.end()
            return subscription
        self._logs.setdefault(key, _Log()).subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if not subscription.ended:
            subscription.end()
        log = self._logs.get(subscription.key)
        if log is None or subscription not in log.subscribers:
            return
        log.subscribers.discard(subscription)
        if not log.subscribers:
            # Its reader, if one runs, stops after its read (not cancelled mid-query: that
            # would cost the pool its connection).
            del self._logs[subscription.key]

    def close(self) -> None:
        """End every stream, and refuse new ones (the app is stopping)."""
        self.closed = True
        for log in list(self._logs.values()):
            for subscription in list(log.subscribers):
                self.unsubscribe(subscription)

    # --- reading the logs ----------------------------------------------------------------------

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        parsed = parse_payload(str(payload))
        if parsed is None:
            return
        key, seq = parsed
        log = self._logs.get(key)
        if log is None:
            return  # nobody here watches that log
        if log.read is None:
            # The first notification since the log's first subscriber came. It names the last
            # event of an append of at most MAX_EVENTS_PER_APPEND: every event committed since
            # is of that append or a later one, so above seq - MAX_EVENTS_PER_APPEND (what is
            # before is in the subscribers' replays); nor is any needed that every subscriber
            # has sent already.
            least_sent = min(s.sent for s in log.subscribers)
            log.read = max(seq - MAX_EVENTS_PER_APPEND, least_sent, 0)
        self._want(key, log)

    def _want(self, key: LogKey, log: _Log) -> None:
        log.wanted = True
        if log.reader is None:
            log.reader = asyncio.get_running_loop().create_task(
                self._read(key, log), name=f"mnemo-events-{key[0]}-{key[1]}"
            )
            self._readers.add(log.reader)
            log.reader.add_done_callback(self._readers.discard)

    async def _read(self, key: LogKey, log: _Log) -> None:
        """Read the log's new events while reads are wanted, giving them to its subscribers;
        a read that fails is retried with backoff (the database may be restarting)."""
        retry = RETRY_FIRST
        bound = self._settings.db_connection_timeout + self._settings.db_query_timeout
        try:
            while log.wanted and self._logs.get(key) is log:
                log.wanted = False
                try:
                    while True:
                        after = self._start(log)
                        self.reads += 1
                        async with asyncio.timeout(bound):
                            page = await events.list_events(
                                self._pool, log=key[0], log_id=key[1], after=after, limit=READ_PAGE
                            )
                        self._deliver(log, page)
                        if len(page) < READ_PAGE or self._logs.get(key) is not log:
                            break
                    retry = RETRY_FIRST
                except (
                    DomainError,
                    OSError,
                    TimeoutError,
                    asyncpg.PostgresError,
                    asyncpg.InterfaceError,
                ) as exc:
                    _log.warning("reading the events of %s %s failed: %r", key[0], key[1], exc)
                    log.wanted = True
                    await asyncio.sleep(retry)
                    retry = min(retry * 2, RETRY_MOST)
        finally:
            log.reader = None

    @staticmethod
    def _start(log: _Log) -> int:
        """Where a read of the log starts: after the last event read; before the first
        notification, after the least any subscriber delivered."""
        if log.read is None:
            log.read = min((s.sent for s in log.subscribers), default=0)
        return log.read

    def _deliver(self, log: _Log, page: list[Event]) -> None:
        if not page:
            return
        log.read = max(log.read or 0, page[-1].seq)
        for subscription in list(log.subscribers):
            for event in page:
                if not subscription.offer(event):
                    _log.info(
                        "a stream of %s %s fell %d events behind: dropped (it resumes from "
                        "the log)",
                        subscription.key[0],
                        subscription.key[1],
                        subscription.capacity,
                    )
                    self.dropped += 1
                    self.unsubscribe(subscription)
                    break

    def _catch_up(self) -> None:
        """Read every subscribed log from its last event read: notifications were lost while
        the listener was away."""
        for key, log in list(self._logs.items()):
            self._want(key, log)

    # --- the listener --------------------------------------------------------------------------

    async def run(self) -> None:
        """Listen on ``mnemo_events`` for the app's lifetime, reconnecting while the database
        is away. Cancel it to stop."""
        retry = RETRY_FIRST
        while True:
            conn: asyncpg.Connection[Any] | None = None
            try:
                conn = await self._connect()
                async with asyncio.timeout(self._settings.db_connection_timeout):
                    await conn.add_listener(CHANNEL, self._heard)
                self.listening = True
                self.connects += 1
                _log.info("live events listening")
                retry = RETRY_FIRST
                # Listening from here on: what was committed while nobody listened is read now.
                self._catch_up()
                while not conn.is_closed():
                    await asyncio.sleep(CHECK_EVERY)
                    async with asyncio.timeout(self._settings.app_health_timeout):
                        await meta.ping(conn)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if self.listening:
                    _log.warning("live events listener lost, reconnecting: %r", exc)
            finally:
                self.listening = False
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(retry)
            retry = min(retry * 2, RETRY_MOST)

    async def _connect(self) -> asyncpg.Connection[Any]:
        url = await asyncio.to_thread(database_url, self._settings)
        return await asyncpg.connect(
            url,
            timeout=self._settings.db_connection_timeout,
            server_settings={"application_name": LISTENER_NAME},
        )


@contextlib.asynccontextmanager
async def listening(hub: EventHub) -> AsyncIterator[EventHub]:
    """Run the hub's listener while the block runs; on exit every stream ends and the
    listener is cancelled (and awaited)."""
    task = asyncio.create_task(hub.run(), name=LISTENER_NAME)
    try:
        yield hub
    finally:
        hub.close()
        tasks = [task, *hub._readers]
        for each in tasks:
            each.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
