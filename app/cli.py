"""``mnemo``, Mnemo's command line: serve, migrate, and the operator's commands.

Every command uses DATABASE_URL, or else the embedded PostgreSQL under DATA_DIR: started if
need be and stopped when the command ends, unless another process (``mnemo serve``) still uses
it. SIGTERM and SIGHUP end a command as cleanly as Ctrl-C does, so a service manager or a
closed terminal never leaves the embedded server running behind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, NoReturn

from pydantic import ValidationError

from dal import embedded, migrate
from dal.settings import PROJECT_DIR, Settings

YOYO_CONFIG = PROJECT_DIR / "yoyo.ini"
# yoyo's commands that work on a database (``new`` and ``init`` only write files).
YOYO_DATABASE_COMMANDS = frozenset(
    {"apply", "develop", "list", "rollback", "reapply", "mark", "unmark", "break-lock"}
)
# Those that ask before each migration (yoyo.ini: batch_mode = off), unless given --batch.
YOYO_ASKING_COMMANDS = frozenset({"apply", "rollback", "reapply", "mark", "unmark"})


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="mnemo",
        description="Mnemo: the memory of AI agents and chat products, in PostgreSQL.",
        epilog="Settings come from the environment or a .env file (see .env.example). "
        "Without DATABASE_URL, an embedded PostgreSQL in DATA_DIR/pg is used.",
    )
    commands = top.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve the HTTP API on APP_HOST:APP_PORT until Ctrl-C or SIGTERM",
        description="Serve the HTTP API on APP_HOST:APP_PORT until Ctrl-C or SIGTERM. Without "
        "DATABASE_URL it starts the embedded PostgreSQL and stops it when it stops.",
    )
    serve.add_argument(
        "--migrate", action="store_true", help="apply pending migrations first (make run)"
    )

    migrate_ = commands.add_parser(
        "migrate",
        help="apply pending migrations (a backup first), under yoyo's lock",
        description="Apply pending migrations under yoyo's lock; two at once are safe. When "
        "some are pending and the database holds Mnemo's tables, a backup goes to "
        "DATA_DIR/backups first (the newest APP_BACKUPS_KEEP are kept).",
    )
    migrate_.add_argument("--no-backup", action="store_true", help="no backup first")
    migrate_.add_argument(
        "--rollback",
        action="store_true",
        help="roll back the newest applied migration instead (asks first; a backup first)",
    )
    migrate_.add_argument(
        "--yes", action="store_true", help="with --rollback: do not ask (needed without a TTY)"
    )

    backup = commands.add_parser(
        "backup",
        help="dump the database (pg_dump -Fc) into DATA_DIR/backups; prints the file",
        description="Dump the whole database with pg_dump in its custom format into "
        "DATA_DIR/backups/mnemo-<UTC time>-<newest migration>.dump, or FILE, and print the "
        "file's path. It holds everything, tokens' hashes and metadata included.",
    )
    backup.add_argument("--out", metavar="FILE", help="write here (a directory: a file in it)")

    restore = commands.add_parser(
        "restore",
        help="restore a backup (pg_restore) into an empty database, or over it with --force",
        description="Restore FILE, a `mnemo backup`, with pg_restore in one transaction. "
        "Refuses a database that holds Mnemo's tables unless --force: then what the backup "
        "holds is dropped first (--clean --if-exists). Stop the app first.",
    )
    restore.add_argument("file")
    restore.add_argument(
        "--force", action="store_true", help="replace what the database holds (--clean)"
    )

    db_url = commands.add_parser(
        "db-url",
        help="print the database URL (for psql, yoyo...)",
        description="Print DATABASE_URL, or the URL of the running embedded PostgreSQL "
        "(`make run` must be running; nothing is started).",
    )
    db_url.add_argument(
        "--yoyo", action="store_true", help="in yoyo's form (postgresql+psycopg://)"
    )

    commands.add_parser(
        "yoyo",
        add_help=False,
        help="run yoyo on Mnemo's database and migrations (`mnemo yoyo list`)",
        description="yoyo's own command line, with --database set to Mnemo's database.",
    )

    users = commands.add_parser(
        "users", help="manage users", description="Manage users."
    ).add_subparsers(dest="users_command", metavar="COMMAND", required=True)
    create = users.add_parser(
        "create",
        help="create a user; prints it with its first token (as POST /v1/users answers)",
        description="Create a user and print it with its first bearer token, as JSON (the "
        "answer of POST /v1/users). The token is shown this once.",
    )
    create.add_argument("username")
    create.add_argument("--display-name", help="the user's display name")
    create.add_argument(
        "--password-stdin",
        action="store_true",
        help='also set their password, read from stdin\'s first line (README "Identity")',
    )
    password = users.add_parser(
        "password",
        help="set a user's password (their sign-in sessions end)",
        description="Set USERNAME's password: stdin's first line when stdin is no terminal, "
        "else typed twice without echo. Their sign-in sessions are signed out.",
    )
    password.add_argument("username")
    erase = users.add_parser(
        "erase",
        help="erase a user: everything they own or wrote, in batches; prints the counts",
        description='Erase USERNAME (README "Erasing a user"): deactivate them, then delete, '
        "batch after batch (APP_ERASURE_BATCH rows, each a short transaction), every row they "
        "own or wrote; their messages in others' conversations become tombstones. Asks first "
        "(--yes: do not). Cut short, run it again: it finishes. Prints the counts per table.",
    )
    erase.add_argument("username")
    erase.add_argument("--yes", action="store_true", help="do not ask (needed without a TTY)")
    erase.add_argument("--json", action="store_true", help="the report as JSON")

    stats_ = commands.add_parser(
        "stats",
        help="storage stats: rows and bytes per table, the biggest users and threads",
        description='Print the storage stats (README "Storage stats"): rows and bytes '
        "(table, TOAST, indexes) per table, the users and threads holding the most, the oldest "
        "data, what the retention policies would delete now. Each statement is bounded by "
        "APP_STATS_TIMEOUT.",
    )
    stats_.add_argument(
        "--top", type=int, default=10, metavar="N", help="users and threads listed (default 10)"
    )
    stats_.add_argument("--json", action="store_true", help="as JSON (GET /v1/admin/stats)")
    stats_.add_argument(
        "--retention",
        action="store_true",
        help="also what the retention policies would delete now (their dry run: as long as a run)",
    )

    export = commands.add_parser(
        "export",
        help="export a user's conversations (NDJSON), or one (JSON), with progress on stderr",
        description="Write every conversation of USERNAME as NDJSON (one document per line, "
        "what GET /v1/export answers), or one conversation as JSON (--conversation), to FILE or "
        "stdout; progress goes to stderr. One database snapshot.",
    )
    export.add_argument("username")
    export.add_argument("--conversation", metavar="ID", help="only this conversation (JSON)")
    export.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")

    import_ = commands.add_parser(
        "import",
        help="import conversations into a user's account, in one transaction",
        description="Import FILE (an export: JSON or NDJSON, or an AI SDK UIMessage[] array) "
        "into USERNAME's account, all or nothing; '-' reads stdin. Prints the counts as JSON.",
    )
    import_.add_argument("username")
    import_.add_argument("file")
    import_.add_argument(
        "--keep-ids", action="store_true", help="keep the ids (fails if a conversation exists)"
    )

    files = commands.add_parser(
        "attachments", help="manage attachments", description="Manage attachments."
    ).add_subparsers(dest="attachments_command", metavar="COMMAND", required=True)
    gc = files.add_parser(
        "gc",
        help="delete files no message has referenced for the grace period, in batches",
        description="Delete, batch after batch (each a short transaction that skips what "
        "concurrent sends hold), every file no message has referenced for the grace period "
        "(APP_ATTACHMENT_GRACE_SECONDS) and every upload left unfinished; print the totals as "
        "JSON. Safe while the app serves.",
    )
    gc.add_argument(
        "--grace",
        type=float,
        metavar="SECONDS",
        help="seconds a file may stay unreferenced (default: APP_ATTACHMENT_GRACE_SECONDS)",
    )
    gc.add_argument("--batch", type=int, default=100, help="files per batch (default 100)")
    gc.add_argument(
        "--dry-run", action="store_true", help="only count what would go; delete nothing"
    )

    keys = commands.add_parser(
        "keys",
        help="the key encrypting profiles' secrets: generate one, rotate to it",
        description="The Fernet key(s) encrypting profiles' secrets (MNEMO_ENCRYPTION_KEY, "
        "else DATA_DIR/encryption-key; several comma-separated: the first encrypts).",
    ).add_subparsers(dest="keys_command", metavar="COMMAND", required=True)
    generate = keys.add_parser(
        "generate",
        help="print a new key (or put it first in DATA_DIR/encryption-key)",
        description="Print a new random Fernet key, to put first in MNEMO_ENCRYPTION_KEY "
        "(NEW,OLD). With --prepend-to-key-file, write it first in DATA_DIR/encryption-key "
        "instead (when MNEMO_ENCRYPTION_KEY is unset); the key is then not printed.",
    )
    generate.add_argument(
        "--prepend-to-key-file", action="store_true", help="NEW,OLD into the key file"
    )
    rotate = keys.add_parser(
        "rotate",
        help="re-encrypt every stored secret with the first key, in batches (resumable)",
        description="Re-encrypt the secrets of every profile (users' and the system's) with "
        "the first key, batch after batch (each a short transaction); what the first key "
        "wrote already is skipped, so an interrupted run is simply run again. Progress on "
        "stderr, the totals as JSON on stdout; a profile whose secret no key decrypts is "
        "named by its id (exit status 1). Safe while the app serves.",
    )
    rotate.add_argument("--batch", type=int, default=100, help="profiles per batch (default 100)")
    policies = commands.add_parser(
        "retention",
        help="enforce the retention policies",
        description='Enforce the retention policies (README "Retention").',
    ).add_subparsers(dest="retention_command", metavar="COMMAND", required=True)
    ret = policies.add_parser(
        "run",
        help="delete what the retention policies expire, in batches",
        description="Delete what the retention policies (RETENTION_THREAD_DAYS, "
        "RETENTION_KEEP_CHECKPOINTS, RETENTION_CONVERSATION_DAYS, and the overrides in "
        "metadata) expire now, batch after batch (each a short transaction that skips the "
        "threads and conversations writers hold); a progress line per batch on stderr, the "
        "totals as JSON. Safe while the app serves; a run stopped anywhere is continued by "
        "the next.",
    )
    ret.add_argument(
        "--batch",
        type=int,
        metavar="N",
        help="rows per table and statement (default: RETENTION_BATCH)",
    )
    ret.add_argument(
        "--dry-run", action="store_true", help="only count what would go; delete nothing"
    )
    ret.add_argument(
        "--pause-ratio",
        type=float,
        metavar="X",
        help="rest X times as long as each batch took (default: RETENTION_PAUSE_RATIO; "
        "0: no rest, as fast as it goes)",
    )
    for flag, what in (
        ("--thread-days", "RETENTION_THREAD_DAYS"),
        ("--keep-checkpoints", "RETENTION_KEEP_CHECKPOINTS"),
        ("--conversation-days", "RETENTION_CONVERSATION_DAYS"),
    ):
        ret.add_argument(flag, type=int, metavar="N", help=f"instead of {what} (0: off)")

    worker = commands.add_parser(
        "worker",
        help="run a task handler (module:function, or demo) until Ctrl-C or SIGTERM",
        description="Claim the tasks of each KIND and run HANDLER on them, at most N at "
        "once: an `async def handler(job)` whose return value is the task's result and whose "
        "exception fails the attempt (retried with backoff while attempts are left). Woken by "
        "LISTEN/NOTIFY when a task arrives, polling as a fallback. The first Ctrl-C or SIGTERM "
        "stops claiming and lets running handlers finish within --grace seconds (then gives "
        "their tasks back to the queue); a second stops at once.",
    )
    worker.add_argument(
        "--kind", action="append", required=True, metavar="KIND", help="a task kind (repeatable)"
    )
    worker.add_argument(
        "--handler",
        required=True,
        metavar="HANDLER",
        help="module:function, or demo (a few timed steps, then a summary)",
    )
    worker.add_argument(
        "--concurrency", type=int, default=1, metavar="N", help="tasks at once (default 1)"
    )
    worker.add_argument(
        "--lease", type=float, default=60.0, metavar="SECONDS", help="lease (default 60)"
    )
    worker.add_argument(
        "--poll", type=float, default=5.0, metavar="SECONDS", help="fallback poll (default 5)"
    )
    worker.add_argument(
        "--grace",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="time running handlers get to finish on stop (default 30)",
    )
    worker.add_argument("--id", metavar="NAME", help="the worker's name (default host:pid:random)")
    profiles_parser(commands)
    return top


def profiles_parser(commands: Any) -> None:
    """``mnemo profiles`` and its commands, on the top parser's subparsers."""
    group = commands.add_parser(
        "profiles",
        help="manage runtime profiles (LLM, RSSHub...): the system's, or a user's with --user",
        description="Manage runtime profiles, as /v1/profiles and /v1/admin/profiles do: the "
        "system's, or those of the user named by --user. Answers are JSON, secrets masked. "
        "Secret values are read from standard input, one line per --secret, never from the "
        "command line.",
    ).add_subparsers(dest="profiles_command", metavar="COMMAND", required=True)

    def command(name: str, text: str) -> Any:
        sub = group.add_parser(name, help=text, description=text)
        sub.add_argument(
            "--user", metavar="USERNAME", help="the user's profiles (default: the system's)"
        )
        return sub

    listed = command("list", "list profiles, by kind then name")
    listed.add_argument("--kind", help="only this kind (llm, rsshub...)")
    listed.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")

    created = command("create", "create a profile; prints it")
    created.add_argument("kind", help="llm, rsshub, or a registered kind")
    created.add_argument("name")
    created.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting (repeat; VALUE as JSON if it parses: 0.2, true, null)",
    )
    created.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="NAME",
        help="a secret (e.g. api_key), its value read from standard input (repeat: a line each)",
    )
    created.add_argument(
        "--activate", action="store_true", help="make it the active one of its kind"
    )

    updated = command("update", "change a profile; a secret not given is kept")
    updated.add_argument("profile_id")
    updated.add_argument("--name")
    updated.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="the settings, replaced whole by those given (repeat)",
    )
    updated.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="NAME",
        help="set a secret, its value read from standard input (repeat: a line each)",
    )
    updated.add_argument("--remove-secret", action="append", default=[], metavar="NAME")

    for name, text in (
        ("show", "print a profile"),
        ("activate", "make a profile the active one of its kind (the previous one is deactivated)"),
        ("delete", "delete a profile"),
    ):
        command(name, text).add_argument("profile_id")

    effective = command(
        "effective",
        "what a kind resolves to: the user's active profile, else the system's, else the "
        "environment (secrets masked)",
    )
    effective.add_argument("kind")


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the process's exit status."""
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except BrokenPipeError:  # `mnemo yoyo list | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a process killed by SIGPIPE


def run(args_list: list[str]) -> int:
    with clean_exit_on_signals():
        if args_list[:1] == ["yoyo"]:
            return yoyo(args_list[1:], Settings())
        args = parser().parse_args(args_list)
        if args.command is None:
            parser().print_help()
            return 2
        settings = Settings()
        if args.command == "serve":
            return serve(settings, migrate_first=args.migrate)
        if args.command == "migrate":
            return migrate_command(
                settings, take_backup=not args.no_backup, rollback=args.rollback, yes=args.yes
            )
        if args.command == "backup":
            from app import backup_cli

            return backup_cli.backup(settings, args.out)
        if args.command == "restore":
            from app import backup_cli

            return backup_cli.restore(settings, args.file, force=args.force)
        if args.command == "db-url":
            return db_url(settings, yoyo_form=args.yoyo)
        if args.command in ("export", "import"):
            from app import transfer_cli

            if args.command == "export":
                return transfer_cli.export(settings, args.username, args.conversation, args.output)
            return transfer_cli.import_file(settings, args.username, args.file, args.keep_ids)
        if args.command == "attachments":
            from app import attachments_cli

            return attachments_cli.collect(
                settings, grace=args.grace, batch=args.batch, dry_run=args.dry_run
            )
        if args.command == "profiles":
            from app import profiles_cli

            return profiles_cli.run(settings, args)
        if args.command == "keys":
            from app import keys_cli

            if args.keys_command == "generate":
                return keys_cli.generate(settings, into_key_file=args.prepend_to_key_file)
            return keys_cli.rotate(settings, batch=args.batch)
        if args.command == "stats":
            from app import erasure_cli

            return erasure_cli.show_stats(
                settings, top=args.top, as_json=args.json, would_delete=args.retention
            )
        if args.command == "users" and args.users_command == "erase":
            from app import erasure_cli

            return erasure_cli.erase(settings, args.username, yes=args.yes, as_json=args.json)
        if args.command == "retention":
            from app import retention_cli

            return retention_cli.run(
                settings,
                batch=args.batch,
                dry_run=args.dry_run,
                pause=args.pause_ratio,
                thread_days=args.thread_days,
                keep_checkpoints=args.keep_checkpoints,
                conversation_days=args.conversation_days,
            )
        if args.command == "worker":
            from app import worker_cli

            return worker_cli.run(
                settings,
                kinds=args.kind,
                handler=args.handler,
                concurrency=args.concurrency,
                lease=args.lease,
                poll=args.poll,
                grace=args.grace,
                worker_id=args.id,
            )
        if args.users_command == "password":
            from app import identity_cli

            return identity_cli.set_password(settings, args.username)
        return create_user(settings, args.username, args.display_name, args.password_stdin)


def serve(settings: Settings, *, migrate_first: bool) -> int:
    from app.server import serve as serve_http

    with embedded.held_database(settings) as url:
        if not settings.database_url:
            print(
                f"Embedded PostgreSQL in {settings.data_dir / 'pg'}: stops when Mnemo stops",
                flush=True,
            )
        if migrate_first and (status := apply_migrations(settings, url)) != 0:
            return status
        serve_http(settings.model_copy(update={"database_url": url}))
    return 0


def migrate_command(settings: Settings, *, take_backup: bool, rollback: bool, yes: bool) -> int:
    from app import backup_cli

    if yes and not rollback:
        print("mnemo: --yes goes with --rollback", file=sys.stderr)
        return 2
    with embedded.held_database(settings) as url:
        if rollback:
            return backup_cli.roll_back(settings, url, yes=yes, take_backup=take_backup)
        return backup_cli.apply_migrations(settings, url, take_backup=take_backup)


def apply_migrations(settings: Settings, url: str) -> int:
    """Pending migrations, after a backup when the database holds Mnemo's tables."""
    from app import backup_cli

    return backup_cli.apply_migrations(settings, url)


def db_url(settings: Settings, *, yoyo_form: bool) -> int:
    url = settings.database_url or embedded.running_url(settings.data_dir / "pg")
    if url is None:
        print(
            f"mnemo: the embedded PostgreSQL in {settings.data_dir / 'pg'} is not running: "
            "start `make run` (or `mnemo serve`) first, or set DATABASE_URL.",
            file=sys.stderr,
        )
        return 1
    print(migrate.yoyo_url(url) if yoyo_form else url)
    return 0


def yoyo(args: list[str], settings: Settings) -> int:
    """yoyo's command line with Mnemo's yoyo.ini (migrations/, interactive) and its database."""
    from yoyo.scripts.main import main as yoyo_main

    argv = ["--config", str(YOYO_CONFIG), *args]
    command = next((a for a in args if not a.startswith("-")), None)
    helping = bool({"-h", "--help"} & set(args))
    if (
        command in YOYO_ASKING_COMMANDS
        and not helping
        and not {"-b", "--batch"} & set(args)
        and not sys.stdin.isatty()
    ):
        # yoyo would fail reading a keypress from a pipe, with a traceback.
        print(
            f"mnemo: yoyo {command} asks before each migration, and stdin is no terminal: "
            "run it in one, or add --batch to go without asking.",
            file=sys.stderr,
        )
        return 2
    wants_database = (
        command in YOYO_DATABASE_COMMANDS
        and not helping
        and not any(a in ("-d", "--database") or a.startswith("--database=") for a in args)
    )
    if not wants_database:
        return int(yoyo_main(argv) or 0)
    with embedded.held_database(settings) as url:
        return int(yoyo_main([*argv, "--database", migrate.yoyo_url(url)]) or 0)


def create_user(
    settings: Settings, username: str, display_name: str | None, password_stdin: bool = False
) -> int:
    import dal
    from app import identity_cli
    from app.schemas import UserCreated
    from dal.gateways import identity, users
    from dal.records.users import UserDraft

    try:
        draft = UserDraft(username=username, display_name=display_name)
    except ValidationError as exc:
        messages = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"mnemo: {messages}", file=sys.stderr)
        return 2
    password_hash = None
    if password_stdin:
        try:
            password = identity_cli.read_password()
        except identity_cli.PasswordRefused as exc:
            print(f"mnemo: {exc}", file=sys.stderr)
            return 2
        password_hash = identity_cli.hash_password(settings, password)

    async def run(url: str) -> UserCreated:
        async with dal.connect(settings.model_copy(update={"database_url": url})) as db:
            created = await users.create_user(db, draft=draft)
            if password_hash is not None:
                await identity.upsert_password(
                    db,
                    user_id=created.user.id,
                    password_hash=password_hash,
                    now=created.user.created_at,
                )
        return UserCreated(
            user=created.user, token=created.token.secret, token_id=created.token.token.id
        )

    with embedded.held_database(settings) as url:
        try:
            answer = asyncio.run(run(url))
        except dal.Conflict:
            print(f"mnemo: the username {username!r} is taken", file=sys.stderr)
            return 1
        except (dal.Unavailable, dal.Timeout) as exc:
            print(f"mnemo: the database did not answer: {exc}", file=sys.stderr)
            return 1
    print(answer.model_dump_json())
    return 0


def _exit_cleanly(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(0)


def _hang_up(signum: int, frame: FrameType | None) -> None:
    # A closed terminal stops Mnemo as SIGTERM does: while uvicorn serves, its own SIGTERM
    # handler shuts the app down gracefully; before and after, _exit_cleanly runs.
    signal.raise_signal(signal.SIGTERM)


@contextmanager
def clean_exit_on_signals() -> Iterator[None]:
    """SIGTERM (and SIGHUP, as a SIGTERM) raise SystemExit, so ``finally`` blocks (stopping the
    embedded server) run, as for Ctrl-C. uvicorn handles SIGTERM itself while it serves, then
    restores these handlers and raises the signal it caught again, which lands here."""
    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, _exit_cleanly),
        signal.SIGHUP: signal.signal(signal.SIGHUP, _hang_up),
    }
    try:
        yield
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":  # pragma: no cover - the console script calls main()
    sys.exit(main())
