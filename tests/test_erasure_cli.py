"""``mnemo users erase`` and ``mnemo stats`` as a user runs them: the installed console script
in a subprocess, on a populated database."""

from __future__ import annotations

import json
from typing import Any

from tests.dal.test_erasure import populate, rows_naming
from tests.test_cli import mnemo


async def test_mnemo_users_erase_asks_then_erases_and_prints_the_counts(
    pool: Any, database_url: str
) -> None:
    world = await populate(pool)
    env = {"DATABASE_URL": database_url, "APP_ERASURE_BATCH": "3"}

    # No terminal to ask, no --yes: nothing happens.
    refused = mnemo("users", "erase", "victim", env=env)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert (
        await pool.fetchval("SELECT deactivated_at FROM users WHERE username = 'victim'")
    ) is None

    done = mnemo("users", "erase", "Victim", "--yes", "--json", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["user_id"] == str(world.victim.id)
    assert report["deleted"]["users"] == 1 and report["deleted"]["conversations"] == 1
    assert report["anonymized"]["messages"] >= 4
    assert "erasing: tokens" in done.stderr  # progress, step by step
    async with pool.acquire() as conn:
        assert await rows_naming(conn, world.victim.id) == {}

    again = mnemo("users", "erase", "victim", "--yes", env=env)
    assert again.returncode == 1 and "no user 'victim'" in again.stderr

    table = mnemo("users", "erase", "third", "--yes", env=env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith("erased third (") and lines[1].split() == [
        "table",
        "deleted",
        "anonymized",
    ]
    assert any(line.split()[:2] == ["users", "1"] for line in lines)


async def test_mnemo_stats_prints_the_tables_users_and_threads(
    pool: Any, database_url: str
) -> None:
    await populate(pool)
    env = {"DATABASE_URL": database_url}
    done = mnemo("stats", "--top", "2", "--json", env=env)
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    tables = {t["table_name"]: t for t in stats["tables"]}
    assert tables["users"]["rows"] == 3
    assert tables["checkpoints"]["rows"] == 15
    assert tables["messages"]["rows"] == await pool.fetchval("SELECT count(*) FROM messages")
    assert len(stats["users"]) == 2 and len(stats["threads"]) == 2
    assert {t["checkpoints"] for t in stats["threads"]} == {5}

    text = mnemo("stats", env=env)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("storage: ")
    assert "top 10 threads by checkpoints" in text.stdout
    assert any(line.split()[:2] == ["checkpoints", "15"] for line in text.stdout.splitlines())

    assert "retention policies: all off (RETENTION_*)" in text.stdout

    # A policy in force is said, and so are the overrides when they are ignored.
    kept = mnemo("stats", env={**env, "RETENTION_KEEP_CHECKPOINTS": "2"})
    assert "retention policies: keep_checkpoints 2\n" in kept.stdout, kept.stdout
    binding = {**env, "RETENTION_KEEP_CHECKPOINTS": "2", "RETENTION_OVERRIDES": "none"}
    bound = mnemo("stats", "--retention", env=binding)
    assert (
        "retention policies: keep_checkpoints 2, overrides ignored (RETENTION_OVERRIDES=none)"
        in bound.stdout
    ), bound.stdout
    assert any(line.split() == ["checkpoints", "9"] for line in bound.stdout.splitlines())

    bad = mnemo("stats", "--top", "0", env=env)
    assert bad.returncode == 2 and "--top" in bad.stderr
