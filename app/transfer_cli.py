"""``mnemo export`` and ``mnemo import``: a user's conversations to and from a file, through
dal.usecases.transfer, with a progress line on stderr (redrawn in place on a terminal, a line
every few seconds otherwise)."""

from __future__ import annotations

import asyncio
import sys
import time
from contextlib import aclosing
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import dal
from dal import embedded
from dal.gateways import conversations, users
from dal.settings import Settings
from dal.usecases import transfer


class Progress:
    """One line on stderr: what is done, of how much, at what rate."""

    def __init__(self, what: str, total: int | None = None, unit: str = "messages") -> None:
        self.what, self.total, self.unit = what, total, unit
        self.started = self.shown = time.monotonic()
        self.tty = sys.stderr.isatty()

    def __call__(
        self, done: int, total: int | None = None, extra: str = "", *, end: bool = False
    ) -> None:
        now = time.monotonic()
        if not end and now - self.shown < (0.1 if self.tty else 5.0):
            return
        self.shown = now
        total = total if total is not None else self.total
        rate = done / max(now - self.started, 1e-6)
        if total:
            width = 30
            filled = min(width, width * done // total)
            bar = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        else:
            bar = f"{done}"
        line = f"{self.what}: {bar} {self.unit}{extra}, {rate:,.0f}/s"
        print(
            ("\r" if self.tty else "") + line,
            end="\n" if end or not self.tty else "",
            file=sys.stderr,
            flush=True,
        )


def _fail(message: str) -> int:
    print(f"mnemo: {message}", file=sys.stderr)
    return 1


def export(settings: Settings, username: str, conversation: str | None, output: str | None) -> int:
    try:
        conversation_id = UUID(conversation) if conversation else None
    except ValueError:
        return _fail(f"--conversation {conversation!r} is not a conversation id")

    async def run(url: str, out: IO[bytes]) -> None:
        async with dal.connect(settings.model_copy(update={"database_url": url})) as db:
            user = await users.get_user_by_username(db, username=username)
            total = None
            if conversation_id is not None:
                found = await conversations.get_conversation(
                    db, user_id=user.id, conversation_id=conversation_id
                )
                total = found.message_count
                pieces = transfer.export_conversation(
                    db, user_id=user.id, conversation_id=conversation_id
                )
            else:
                pieces = transfer.export_all(db, user_id=user.id)
            progress, done, size = Progress("export", total), 0, 0
            async with aclosing(pieces) as stream:
                async for piece in stream:
                    out.write(piece)
                    done += piece.count(b'"seq":')  # once per message: quotes in text are escaped
                    size += len(piece)
                    progress(done, extra=f", {size / 1e6:,.1f} MB")
            progress(done, extra=f", {size / 1e6:,.1f} MB", end=True)

    with embedded.held_database(settings) as url:
        try:
            if output is None:
                asyncio.run(run(url, sys.stdout.buffer))
                sys.stdout.flush()
            else:
                with Path(output).open("wb") as out:
                    asyncio.run(run(url, out))
        except dal.NotFound as exc:
            return _fail(str(exc))
        except (dal.Unavailable, dal.Timeout) as exc:
            return _fail(f"the database did not answer: {exc}")
    return 0


def import_file(settings: Settings, username: str, file: str, keep_ids: bool) -> int:
    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        return _fail(f"cannot read {file}: {exc.strerror}")
    if len(data) > settings.app_max_import_bytes:
        return _fail(f"{file} is over APP_MAX_IMPORT_BYTES ({settings.app_max_import_bytes} bytes)")

    async def run(url: str) -> Any:
        documents = transfer.read_documents(data, max_json_depth=settings.app_max_json_depth)
        progress = Progress("import")
        async with dal.connect(settings.model_copy(update={"database_url": url})) as db:
            user = await users.get_user_by_username(db, username=username)
            result = await transfer.import_conversations(
                db,
                user_id=user.id,
                documents=documents,
                keep_ids=keep_ids,
                max_bytes=settings.app_max_message_bytes,
                max_parts=settings.app_max_message_parts,
                progress=progress,
                timeout=settings.app_import_timeout,
            )
        progress(result.message_count, result.message_count, end=True)
        return result

    with embedded.held_database(settings) as url:
        try:
            result = asyncio.run(run(url))
        except (dal.NotFound, dal.InvalidInput, dal.Conflict) as exc:
            return _fail(str(exc))
        except (dal.Unavailable, dal.Timeout) as exc:
            return _fail(f"the database did not answer: {exc}")
    print(result.model_dump_json())
    return 0
