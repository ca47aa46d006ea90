"""The agent workload that runs while retention deletes: ``--retention-clients`` coroutines,
each invoking the suite's graph on ``AsyncpgSaver`` (a pool of its own) and reading the state
back, one operation after the other, timing each.

Clients take turns among three kinds of threads:

- ``fresh``: threads of their own, new in this run (written only by the workload), a new one
  every ``ROTATE`` invocations;
- ``pruned``: recent seeded threads, the ones keep-N prunes while the client writes to them: the
  client's share of them, one after the other;
- ``expiring``: old seeded threads, a new one for each invocation while the thread TTL runs,
  so that some are written while the run is deciding to delete them (a write makes a thread
  recent: it must survive, and whole); in the other phases, threads of their own as ``fresh``.

No thread's state grows without bound: a graph's state holds every message of its thread, so an
invocation costs more the longer the thread (about 4 µs per message here), and a workload
writing the same few threads for minutes would slow down by itself, whatever retention does
(it did: 5x between the first and the last phase of a 1M run). Spreading the writes keeps the
cost of an operation the same in every phase, so the phases compare.

Every latency goes to the phase under way (``before``: the workload alone; then one phase per
retention run); none is kept between phases. ``check`` proves at the end that nothing the
workload wrote was lost: each thread it wrote has the state its invocations made (every
message, so every blob the latest checkpoint needs), and the checkpoints it saw as the latest
after each of its last invocations are all there. A seeded thread must also be found whole or
not at all by its first invocation: ``torn`` lists those found half deleted (by a thread-TTL
run part-way through it; the rows were old, so not a loss of what the workload wrote).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field

from bench.checkpoints.graph import USER_TEXT, Graph, Saver, checkpoint_config, thread
from bench.retention.dataset import Dataset

KINDS = ("fresh", "pruned", "expiring")
ROTATE = 10  # invocations of a thread of the workload's own before it takes a new one
PER_INVOKE_MESSAGES = 4  # the user's message and one per node
PER_INVOKE_TURNS = 3


@dataclass
class Written:
    """What the workload did to one thread."""

    kind: str
    base_messages: int  # what the thread held before the workload's first invocation
    base_turns: int
    invokes: int = 0
    latest: list[str] = field(default_factory=list)  # latest checkpoint id after each invoke

    @property
    def expected(self) -> tuple[int, int]:
        """The (messages, turns) the thread must hold after the workload's invocations."""
        return (
            self.base_messages + PER_INVOKE_MESSAGES * self.invokes,
            self.base_turns + PER_INVOKE_TURNS * self.invokes,
        )


@dataclass
class Workload:
    graph: Graph
    saver: Saver
    dataset: Dataset
    clients: int
    phase: str | None = None
    latencies: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    written: dict[str, Written] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    torn: list[str] = field(default_factory=list)  # seeded threads first read half deleted

    @property
    def seeded(self) -> tuple[int, int]:
        return (self.dataset.messages, self.dataset.turns)

    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def _threads(self, client: int) -> tuple[str, list[str]]:
        kind = KINDS[client % len(KINDS)]
        peers = [c for c in range(self.clients) if KINDS[c % len(KINDS)] == kind]
        slot, of = peers.index(client), len(peers)
        if kind == "fresh":
            return kind, []
        seeded = self.dataset.recent_threads if kind == "pruned" else self.dataset.old_threads
        return kind, seeded[slot::of]  # the client's share, cycled

    async def _client(self, client: int) -> None:
        kind, threads = self._threads(client)
        own = seeded = 0  # invocations on threads of its own, on seeded threads
        while not self._stop.is_set() and (threads or kind == "fresh"):
            # An old thread, once written, is recent: the "expiring" clients take old threads
            # only while the thread TTL runs (it has the others to delete), and threads of
            # their own otherwise.
            if kind == "fresh" or (kind == "expiring" and self.phase != "thread_ttl"):
                thread_id, from_seed = f"{kind}-{client}-{own // ROTATE}", False
                own += 1
            else:
                thread_id, from_seed = threads[seeded % len(threads)], True
                seeded += 1
            phase = self.phase
            start = time.perf_counter()
            out = await self.graph.ainvoke({"messages": [USER_TEXT]}, thread(thread_id))
            invoked = time.perf_counter()
            messages, turns = len(out["messages"]), out["turns"]
            record = self.written.get(thread_id)
            if record is None:
                # What the thread held before: the seeded state, or nothing if the thread-TTL
                # run deleted it before this first invocation read it (no loss: it was old).
                # Anything else is a seeded thread read half deleted (torn).
                record = self.written[thread_id] = Written(
                    kind, messages - PER_INVOKE_MESSAGES, turns - PER_INVOKE_TURNS
                )
                before = (record.base_messages, record.base_turns)
                if from_seed and before not in ((0, 0), self.seeded):
                    self.torn.append(
                        f"{thread_id} ({kind}): resumed from {before[0]} messages and "
                        f"{before[1]} turns, seeded with {self.seeded}"
                    )
            record.invokes += 1
            if (messages, turns) != record.expected:
                self.errors.append(
                    f"{thread_id} ({kind}): invocation {record.invokes} saw {messages} messages "
                    f"and {turns} turns, {record.expected} written"
                )
                # Counted once: the next invocations are checked against what this one saw.
                record.base_messages += messages - record.expected[0]
                record.base_turns += turns - record.expected[1]
            latest = await self.saver.aget_tuple(checkpoint_config(thread_id))
            done = time.perf_counter()
            if latest is None:
                self.errors.append(f"{thread_id}: no checkpoint right after an invocation")
            else:
                record.latest.append(latest.checkpoint["id"])
            if phase is not None and phase == self.phase:
                self.latencies[(phase, "invoke")].append(invoked - start)
                self.latencies[(phase, "aget_tuple")].append(done - invoked)

    async def run(self) -> None:
        """Run the clients until ``stop``; an error in one stops them all and is raised."""
        try:
            await asyncio.gather(*(self._client(c) for c in range(self.clients)))
        finally:
            self._stop.set()

    def stop(self) -> None:
        self._stop.set()

    async def check(self, keep: int) -> list[str]:
        """What the workload wrote and lost: one line per thread that lost something."""
        lost = list(self.errors)
        for thread_id, record in self.written.items():
            state = await self.graph.aget_state(thread(thread_id))
            messages = len(state.values.get("messages", []))
            turns = state.values.get("turns", 0)
            if (messages, turns) != record.expected:
                lost.append(
                    f"{thread_id} ({record.kind}): {messages} messages and {turns} turns at "
                    f"the end, {record.expected} written"
                )
                continue
            ids = {
                t.checkpoint["id"]
                async for t in self.saver.alist(checkpoint_config(thread_id), limit=keep)
            }
            # An invocation writes 5 checkpoints: the latest of its last keep // 5 are among
            # the newest ``keep``, which keep-N keeps.
            recent = record.latest[-max(1, keep // 5) :]
            missing = [c for c in recent if c not in ids]
            if missing:
                lost.append(f"{thread_id} ({record.kind}): {len(missing)} checkpoints missing")
        return lost
