"""``mnemo worker``: run a handler over the tasks of some kinds until Ctrl-C or SIGTERM
(README "Tasks", "Workers"), with ``dal.usecases.tasks.Worker``: woken by LISTEN/NOTIFY,
polling as a fallback, at most ``--concurrency`` tasks at once.

The handler is ``module:function`` (an ``async def handler(job)`` whose return value is the
task's result; the current directory is importable), or a name of ``HANDLERS``: ``demo`` runs
a few timed steps and returns a summary. The first SIGINT or SIGTERM stops claiming and lets
the handlers running finish within ``--grace`` seconds (then cancels them, giving their tasks
back to the queue at once); a second one does that at once.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

import dal
from dal import embedded
from dal.gateways import events
from dal.records.events import EventDraft
from dal.records.tasks import Kind
from dal.settings import Settings
from dal.usecases.tasks import Handler, Job, Worker

# Handlers known by a name (``--handler demo``).
HANDLERS = {"demo": "app.worker_cli:demo"}
# The demo's steps, and the bounds of the seconds each takes (its input's "step_seconds").
DEMO_STEPS = ("search", "read", "summarize")
DEMO_STEP_SECONDS, DEMO_MAX_STEP_SECONDS = 1.0, 10.0


async def demo(job: Job) -> Any:
    """The demo handler: writes a ``plan`` event to the task's log, then runs the steps of
    DEMO_STEPS, ``step_seconds`` each (input, default 1 s), each between a ``step.started``
    and a ``step.finished`` event, and returns ``{"summary", "steps"}``; input
    ``{"fail": true}`` fails every attempt (after its steps)."""
    task = job.task
    topic = str(task.input.get("topic") or task.title or task.kind)
    pause = task.input.get("step_seconds", DEMO_STEP_SECONDS)
    if not isinstance(pause, int | float) or isinstance(pause, bool):
        pause = DEMO_STEP_SECONDS
    pause = min(max(float(pause), 0.0), DEMO_MAX_STEP_SECONDS)

    async def log(type_: str, **payload: Any) -> None:
        draft = EventDraft(type=type_, payload={**payload, "attempt": task.attempts})
        await events.append_task_events(job.db, task_id=task.id, events=[draft])

    await log("plan", topic=topic, steps=list(DEMO_STEPS))
    for step in DEMO_STEPS:
        await log("step.started", step=step)
        await asyncio.sleep(pause)
        await log("step.finished", step=step, output=f"{step}: {topic}")
    if task.input.get("fail") is True:
        raise RuntimeError(f"the demo was asked to fail (attempt {task.attempts})")
    return {"summary": f"all about {topic}", "steps": list(DEMO_STEPS)}


def load_handler(spec: str) -> Handler:
    """The coroutine function ``spec`` names (``module:function``, or a name of HANDLERS);
    ValueError saying what is wrong."""
    target = HANDLERS.get(spec, spec)
    module_name, _, name = target.partition(":")
    if not module_name or not name:
        raise ValueError(f"--handler {spec!r}: give module:function, or one of {sorted(HANDLERS)}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"--handler {spec!r}: cannot import {module_name}: {exc}") from exc
    handler = getattr(module, name, None)
    if not inspect.iscoroutinefunction(handler):
        raise ValueError(f"--handler {spec!r}: {module_name} has no async function {name}")
    return handler


def run(
    settings: Settings,
    *,
    kinds: Sequence[str],
    handler: str,
    concurrency: int,
    lease: float,
    poll: float,
    grace: float,
    worker_id: str | None,
) -> int:
    """Run the worker until a signal stops it; returns the exit status."""
    problems = [f"--kind {k!r} is not a task kind" for k in kinds if not _is_kind(k)]
    if not 1 <= concurrency <= 1000:
        problems.append("--concurrency must be 1 to 1000")
    if not 1 <= lease <= 86_400 or not 0 < poll <= 3600 or not 0 <= grace <= 86_400:
        problems.append("--lease must be 1 to 86400 s, --poll above 0 up to 3600, --grace 0+")
    try:
        run_handler = load_handler(handler)
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        print(f"mnemo: {'; '.join(problems)}", file=sys.stderr)
        return 2
    # What the worker says (its tasks' outcomes) at INFO; others (the embedded server's
    # start-up chatter) only warnings.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", stream=sys.stderr)
    for name in ("dal.usecases.tasks", __name__):
        logging.getLogger(name).setLevel(logging.INFO)

    async def main(url: str) -> None:
        pool_settings = settings.model_copy(
            update={
                "database_url": url,
                # each handler may hold a connection, beside the claims and the heartbeats
                "db_max_connections": max(settings.db_max_connections, concurrency + 2),
            }
        )
        async with dal.connect(pool_settings) as pool:
            worker = Worker(
                pool,
                run_handler,
                kinds=kinds,
                worker_id=worker_id,
                concurrency=concurrency,
                lease_seconds=lease,
                poll_seconds=poll,
            )
            await _run_until_signalled(worker, grace)

    with embedded.held_database(settings) as url:
        try:
            asyncio.run(main(url))
        except (dal.Unavailable, dal.Timeout) as exc:
            print(f"mnemo: the database did not answer: {exc}", file=sys.stderr)
            return 1
    print("worker stopped", file=sys.stderr, flush=True)
    return 0


def _is_kind(kind: str) -> bool:
    try:
        TypeAdapter(Kind).validate_python(kind)
    except ValidationError:
        return False
    return True


async def _run_until_signalled(worker: Worker, grace: float) -> None:
    """``worker.run()``; the first SIGINT/SIGTERM stops it gracefully, a second at once."""
    loop = asyncio.get_running_loop()
    running = asyncio.create_task(worker.run())
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def stop() -> None:
        if worker.stopping:
            print("stopping now", file=sys.stderr, flush=True)
            running.cancel()
        else:
            print(f"stopping (within {grace:g} s; again to stop now)", file=sys.stderr, flush=True)
            worker.stop(grace_seconds=grace)

    for sig in signals:
        loop.add_signal_handler(sig, stop)
    print(
        f"worker {worker.worker_id} running kinds {', '.join(worker.kinds)} "
        f"(concurrency {worker.concurrency}); Ctrl-C stops it",
        file=sys.stderr,
        flush=True,
    )
    try:
        await running
    except asyncio.CancelledError:
        if not worker.stopping:
            raise
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
            signal.signal(sig, previous[sig])
