"""``mnemo users erase`` and ``mnemo stats``: erasing a user (README "Erasing a user") and the
storage stats (README "Storage stats"), through dal.usecases, from the command line."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence

import dal
from dal import embedded
from dal.gateways import users
from dal.records.erasure import ErasureReport
from dal.records.stats import Stats
from dal.settings import Settings
from dal.usecases import erasure, retention, stats


def _table(rows: Sequence[Sequence[str]]) -> str:
    """Rows as aligned columns (the first row the header); numbers right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def cell(value: str, i: int) -> str:
        numeric = value.replace(",", "").replace("-", "").isdigit()
        return value.rjust(widths[i]) if numeric and i else value.ljust(widths[i])

    return "\n".join("  ".join(cell(v, i) for i, v in enumerate(row)).rstrip() for row in rows)


def _confirm(username: str, yes: bool) -> int | None:
    """None to go on; else the exit status (refused, or no terminal to ask)."""
    if yes:
        return None
    if not sys.stdin.isatty():
        print(
            f"mnemo: erasing {username!r} deletes everything of theirs for good; stdin is no "
            "terminal to confirm it: add --yes.",
            file=sys.stderr,
        )
        return 2
    answer = input(
        f"Erase {username!r}: their conversations, messages, threads, files and tokens, for "
        "good (their messages in others' conversations become tombstones)? [y/N] "
    )
    if answer.strip().lower() not in ("y", "yes"):
        print("erased: nothing")
        return 1
    return None


def erase(settings: Settings, username: str, *, yes: bool, as_json: bool) -> int:
    """Erase USERNAME after a confirmation; print the report (a table, or JSON)."""
    if (status := _confirm(username, yes)) is not None:
        return status
    steps: dict[str, int] = {}

    def progress(step: str, counts: Mapping[str, int]) -> None:
        if step not in steps:
            print(f"erasing: {step}", file=sys.stderr, flush=True)
        steps[step] = steps.get(step, 0) + sum(counts.values())

    async def run(url: str) -> ErasureReport:
        async with dal.connect(settings.model_copy(update={"database_url": url})) as db:
            user = await users.get_user_by_username(db, username=username)
            return await erasure.erase_user(
                db, user_id=user.id, batch=settings.app_erasure_batch, progress=progress
            )

    with embedded.held_database(settings) as url:
        try:
            report = asyncio.run(run(url))
        except dal.NotFound:
            print(f"mnemo: there is no user {username!r}", file=sys.stderr)
            return 1
        except (dal.Unavailable, dal.Timeout) as exc:
            print(
                f"mnemo: the database did not answer: {exc} (run it again: it finishes)",
                file=sys.stderr,
            )
            return 1
    if as_json:
        print(report.model_dump_json())
        return 0
    rows = [("table", "deleted", "anonymized")]
    for table in sorted(set(report.deleted) | set(report.anonymized)):
        rows.append(
            (
                table,
                f"{report.deleted.get(table, 0):,}",
                f"{report.anonymized.get(table, 0):,}",
            )
        )
    print(f"erased {report.username} ({report.user_id}) in {report.batches} batches")
    print(_table(rows))
    return 0


def show_stats(settings: Settings, *, top: int, as_json: bool, would_delete: bool = False) -> int:
    """Print the storage stats (tables, then the ``top`` users and threads, the oldest data),
    or their JSON (what GET /v1/admin/stats answers)."""
    if not 1 <= top <= stats.MAX_TOP:
        print(f"mnemo: --top must be 1 to {stats.MAX_TOP}", file=sys.stderr)
        return 2

    async def run(url: str) -> Stats:
        async with dal.connect(settings.model_copy(update={"database_url": url})) as db:
            return await stats.get_stats(
                db,
                top=top,
                timeout=settings.app_stats_timeout,
                policy=retention.policy_of(settings),
                retention_batch=settings.retention_batch,
                retention_pause=settings.retention_pause_ratio,
                would_delete=would_delete,
            )

    with embedded.held_database(settings) as url:
        try:
            answer = asyncio.run(run(url))
        except (dal.Unavailable, dal.Timeout) as exc:
            print(f"mnemo: the database did not answer: {exc}", file=sys.stderr)
            return 1
    if as_json:
        print(answer.model_dump_json())
        return 0
    print(_render(answer))
    return 0


def _render(answer: Stats) -> str:
    tables = [("table", "rows", "table", "toast", "indexes", "total")]
    for t in answer.tables:
        rows = f"{t.rows:,}" if t.rows_exact else f"~{t.rows:,}"
        tables.append(
            (
                t.table_name,
                rows,
                _bytes(t.table_bytes),
                _bytes(t.toast_bytes),
                _bytes(t.index_bytes),
                _bytes(t.total_bytes),
            )
        )
    users_ = [("user", "conversations", "messages", "checkpoints", "file bytes")]
    for u in answer.users:
        users_.append(
            (
                u.username,
                f"{u.conversations:,}",
                f"{u.messages:,}",
                f"{u.checkpoints:,}",
                _bytes(u.attachment_bytes),
            )
        )
    threads = [("thread", "user", "checkpoints", "oldest", "newest")]
    for th in answer.threads:
        threads.append(
            (
                th.thread_id,
                str(th.user_id),
                f"{th.checkpoints:,}",
                th.oldest_at.isoformat(timespec="seconds"),
                th.newest_at.isoformat(timespec="seconds"),
            )
        )
    oldest = answer.oldest.model_dump()
    parts = [
        f"storage: {_bytes(answer.total_bytes)} in {len(answer.tables)} tables "
        f"(~: the planner's estimate of rows, exact below {answer.exact_rows_below:,})",
        _table(tables),
        "",
        f"top {answer.top} users (messages in the conversations they own, checkpoints)",
        _table(users_) if len(users_) > 1 else "(none)",
        "",
        f"top {answer.top} threads by checkpoints",
        _table(threads) if len(threads) > 1 else "(none)",
        "",
        "oldest data",
        _table(
            [("what", "when")]
            + [(k, v.isoformat(timespec="seconds") if v else "-") for k, v in oldest.items()]
        ),
    ]
    preview = answer.retention
    policy: dict[str, object] = {
        k: v for k, v in preview.policy.items() if v is not None and k != "overrides"
    }
    if policy and preview.policy.get("overrides") is False:
        policy["overrides"] = "ignored (RETENTION_OVERRIDES=none)"
    if policy and preview.checkpoints is None:
        parts += [
            "",
            "retention policies: " + ", ".join(f"{k} {v}" for k, v in policy.items()),
            "(what they would delete now: mnemo stats --retention, or mnemo retention run "
            "--dry-run)",
        ]
    elif policy:
        would = preview.model_dump(exclude={"policy"})
        parts += [
            "",
            "retention policies: " + ", ".join(f"{k} {v}" for k, v in policy.items()),
            "they would delete now (dry run):",
            _table([("what", "rows")] + [(k, f"{v:,}") for k, v in would.items()]),
        ]
    else:
        parts += ["", "retention policies: all off (RETENTION_*)"]
    return "\n".join(parts)


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
