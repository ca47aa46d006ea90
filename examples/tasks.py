"""Tasks from Python: a user submits work, a worker claims it, fails once and is retried
after a backoff, then succeeds; a finished task cannot be cancelled.

Run it with `.venv/bin/python examples/tasks.py` after `make migrate`.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import dal
from dal.errors import IllegalTransition, LeaseLost
from dal.gateways import tasks, users
from dal.records.tasks import Task, TaskDraft
from dal.records.users import UserDraft

KIND = f"research-{secrets.token_hex(3)}"  # this run's own kind: no other worker's tasks


async def research(task: Task) -> Any:
    if task.input["topic"] == "flaky" and task.attempts == 1:
        raise RuntimeError("the search engine timed out")
    return {"summary": f"all about {task.input['topic']}"}


async def worker(db: Any, name: str) -> None:
    """Claim until nothing is left (a real worker would keep polling)."""
    idle = 0
    while idle < 10:
        claimed = await tasks.claim_tasks(db, kinds=[KIND], worker=name, lease_seconds=60)
        idle = 0 if claimed else idle + 1
        for task in claimed:
            try:
                result = await research(task)
                await tasks.complete_task(db, task_id=task.id, worker=name, result=result)
            except LeaseLost:
                pass  # the lease expired or the task was cancelled: someone else has it now
            except Exception as exc:
                await tasks.fail_task(
                    db, task_id=task.id, worker=name, error=str(exc), backoff_base_seconds=0.2
                )
        if not claimed:
            await asyncio.sleep(0.1)


async def main() -> None:
    async with dal.connect() as db:
        user = await users.insert_user(db, draft=UserDraft(username=f"ops-{secrets.token_hex(3)}"))
        for topic, priority in (("EV market", 0), ("flaky", 5)):
            draft = TaskDraft(kind=KIND, title=topic, priority=priority, input={"topic": topic})
            await tasks.insert_task(db, user_id=user.id, draft=draft)
        await worker(db, "worker-1")
        page = await tasks.list_tasks(db, user_id=user.id)
        for task in reversed(page.items):
            print(f"{task.title}: {task.status} after {task.attempts} attempt(s): {task.result}")
        try:
            await tasks.cancel_task(db, user_id=user.id, task_id=page.items[0].id)
        except IllegalTransition as exc:
            print(f"cancel refused: {exc.message}")


if __name__ == "__main__":
    asyncio.run(main())
