"""``mnemo users password USERNAME``: set a user's password (README "Identity"), read from
stdin when it is no terminal (its first line), else asked twice without echo."""

from __future__ import annotations

import asyncio
import getpass
import sys
from datetime import UTC, datetime

from pydantic import ValidationError

from dal import embedded
from dal.records.identity import MAX_PASSWORD_CHARS, PasswordSet
from dal.settings import Settings


class PasswordRefused(Exception):
    """The password read is not one to set: the message says why."""


def read_password() -> str:
    """The new password: stdin's first line (without its line break) when stdin is no
    terminal, else typed twice at a prompt; PasswordRefused if out of bounds or mistyped."""
    if sys.stdin.isatty():
        password = getpass.getpass("New password: ")
        if getpass.getpass("Again: ") != password:
            raise PasswordRefused("the two passwords differ")
    else:
        # One more character than allowed (and a CRLF) is enough to tell it is too long.
        password = sys.stdin.readline(MAX_PASSWORD_CHARS + 3).removesuffix("\n")
        password = password.removesuffix("\r")
    try:
        return PasswordSet(password=password).password
    except ValidationError as exc:
        raise PasswordRefused(f"password: {exc.errors()[0]['msg']}") from None


def hash_password(settings: Settings, password: str) -> str:
    from app.identity import password_hasher

    return password_hasher(settings).hash(password)


def set_password(settings: Settings, username: str) -> int:
    import dal
    from dal.gateways import identity, users

    try:
        password_hash = hash_password(settings, read_password())
    except PasswordRefused as exc:
        print(f"mnemo: {exc}", file=sys.stderr)
        return 2

    async def run(url: str) -> int:
        async with dal.connect(settings.model_copy(update={"database_url": url})) as db:
            user = await users.get_user_by_username(db, username=username)
            return await identity.set_password(
                db,
                user_id=user.id,
                password_hash=password_hash,
                now=datetime.now(UTC),
                reason="password_set",
            )

    with embedded.held_database(settings) as url:
        try:
            revoked = asyncio.run(run(url))
        except dal.NotFound:
            print(f"mnemo: no user is named {username!r}", file=sys.stderr)
            return 1
        except (dal.Unavailable, dal.Timeout) as exc:
            print(f"mnemo: the database did not answer: {exc}", file=sys.stderr)
            return 1
    print(
        f"mnemo: the password of {username.strip().lower()} is set; {revoked} session(s) signed out"
    )
    return 0
