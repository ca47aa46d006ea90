"""Tasks from Python: a user submits work, a worker takes it (woken by LISTEN/NOTIFY), fails
once and is retried after a backoff, then succeeds; a finished task cannot be cancelled.

Run it with `.venv/bin/python examples/tasks.py` after `make migrate`.
"""

from __future__ import annotations

import asyncio
import secrets
from contextlib import aclosing
from typing import Any

import dal
from dal.errors import IllegalTransition
from dal.gateways import tasks, users
from dal.records.tasks import Task, TaskDraft
from dal.records.users import UserDraft
from dal.usecases.tasks import mnemo_worker

KIND = f"research-{secrets.token_hex(3)}"  # this run's own kind: no other worker's tasks


async def research(task: Task) -> Any:
    if task.input["topic"] == "flaky" and task.attempts == 1:
        raise RuntimeError("the search engine timed out")
    return {"summary": f"all about {task.input['topic']}"}


async def work(db: Any, tasks_to_finish: int) -> None:
    """Run tasks until that many succeeded (a real worker runs until stopped)."""
    jobs = mnemo_worker(db, kinds=[KIND], lease_seconds=60, backoff_base_seconds=0.2)
    async with aclosing(jobs):
        async for job in jobs:
            async with job:  # heartbeats while held; an exception fails the attempt
                await job.complete(await research(job.task))
            if job.task.status == "succeeded":
                tasks_to_finish -= 1
                if not tasks_to_finish:
                    break


async def main() -> None:
    async with dal.connect() as db:
        user = await users.insert_user(db, draft=UserDraft(username=f"ops-{secrets.token_hex(3)}"))
        for topic, priority in (("EV market", 0), ("flaky", 5)):
            draft = TaskDraft(kind=KIND, title=topic, priority=priority, input={"topic": topic})
            await tasks.insert_task(db, user_id=user.id, draft=draft)
        await work(db, tasks_to_finish=2)
        page = await tasks.list_tasks(db, user_id=user.id)
        for task in reversed(page.items):
            print(f"{task.title}: {task.status} after {task.attempts} attempt(s): {task.result}")
        try:
            await tasks.cancel_task(db, user_id=user.id, task_id=page.items[0].id)
        except IllegalTransition as exc:
            print(f"cancel refused: {exc.message}")


if __name__ == "__main__":
    asyncio.run(main())
