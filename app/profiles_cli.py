"""``mnemo profiles``: runtime profiles from the command line (README "Runtime profiles"), the
same gateways as ``/v1/profiles`` and ``/v1/admin/profiles``. A profile belongs to the user
named by ``--user``, else to the system. Output is the JSON the HTTP API answers (secrets
masked); secret values are read from standard input, never from the command line (which other
users of the machine can see in the process list)."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg
from pydantic import BaseModel, ValidationError

import dal
from dal import embedded
from dal.errors import EncryptionKeyMismatch
from dal.gateways import profiles, users
from dal.records.profiles import ProfileDraft, ProfilePatch
from dal.settings import Settings
from dal.vault import Vault

if TYPE_CHECKING:
    Pool = asyncpg.Pool[Any]
    Work = Callable[[Pool, Vault, UUID | None], Awaitable[BaseModel | None]]


class CommandError(Exception):
    """A mistake of the command line: printed as ``mnemo: <message>``, exit status 2."""


def _fail(message: str, status: int = 1) -> int:
    print(f"mnemo: {message}", file=sys.stderr)
    return status


def parse_settings(pairs: list[str]) -> dict[str, Any]:
    """``--set key=value`` pairs: a value that parses as JSON is taken as such (numbers, true,
    null), anything else as a string."""
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--set {pair!r}: write KEY=VALUE")
        try:
            settings[key.strip()] = json.loads(value)
        except ValueError:
            settings[key.strip()] = value
    return settings


def read_secrets(names: list[str]) -> dict[str, str]:
    """The value of each ``--secret NAME``: a line of standard input each, in order (asked for
    without echo on a terminal)."""
    values: dict[str, str] = {}
    for name in names:
        if sys.stdin.isatty():
            value = getpass.getpass(f"{name}: ")
        else:
            line = sys.stdin.readline()
            if not line:
                raise CommandError(f"--secret {name}: no line left on standard input for it")
            value = line.rstrip("\r\n")
        values[name] = value
    return values


def _checked(model: type[BaseModel], values: dict[str, Any]) -> Any:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise CommandError(
            "; ".join(
                f"{'.'.join(map(str, error['loc'])) or 'input'}: {error['msg']}"
                for error in exc.errors(include_input=False)
            )
        ) from None


def _profile_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a profile id") from None


def run(settings: Settings, args: Any) -> int:
    """Carry out ``mnemo profiles <command>``; the exit status."""
    try:
        work = _work(args)
    except CommandError as exc:
        return _fail(str(exc), 2)
    try:
        vault = Vault.from_settings(settings)
    except ValueError as exc:
        return _fail(str(exc), 2)

    async def session(url: str) -> BaseModel | None:
        async with dal.connect(settings.model_copy(update={"database_url": url})) as db:
            user_id = None
            if args.user is not None:
                user_id = (await users.get_user_by_username(db, username=args.user)).id
            return await work(db, vault, user_id)

    with embedded.held_database(settings) as url:
        try:
            answer = asyncio.run(session(url))
        except CommandError as exc:
            return _fail(str(exc), 2)
        except dal.NotFound as exc:
            return _fail(str(exc))
        except (dal.InvalidInput, dal.Conflict, EncryptionKeyMismatch) as exc:
            return _fail(str(exc))
        except (dal.Unavailable, dal.Timeout) as exc:
            return _fail(f"the database did not answer: {exc}")
    if answer is not None:
        print(answer.model_dump_json())
    return 0


def _work(args: Any) -> Work:
    """What the command does once connected: checked, and its secrets read, before any
    connection is made."""
    command = args.profiles_command
    if command == "list":

        async def listed(db: Pool, vault: Vault, user_id: UUID | None) -> BaseModel:
            return await profiles.list_profiles(
                db, user_id=user_id, kind=args.kind, limit=args.limit
            )

        return listed
    if command == "effective":

        async def effective(db: Pool, vault: Vault, user_id: UUID | None) -> BaseModel:
            resolved = await profiles.resolve(db, vault, kind=args.kind, user_id=user_id)
            return resolved.effective()

        return effective
    if command == "create":
        draft: ProfileDraft = _checked(
            ProfileDraft,
            {
                "kind": args.kind,
                "name": args.name,
                "settings": parse_settings(args.set),
                "secrets": read_secrets(args.secret),
            },
        )

        async def created(db: Pool, vault: Vault, user_id: UUID | None) -> BaseModel:
            async with dal.transaction(db) as tx:
                profile = await profiles.insert_profile(tx, vault, user_id=user_id, draft=draft)
                if args.activate:
                    profile = await profiles.activate_profile(
                        tx, user_id=user_id, profile_id=profile.id
                    )
            return profile

        return created
    profile_id = _profile_id(args.profile_id)
    if command == "update":
        values: dict[str, Any] = {}
        if args.name is not None:
            values["name"] = args.name
        if args.set:
            values["settings"] = parse_settings(args.set)
        secrets: dict[str, str | None] = dict(read_secrets(args.secret))
        secrets.update({name: None for name in args.remove_secret})
        if secrets:
            values["secrets"] = secrets
        if not values:
            raise CommandError("nothing to change: give --name, --set, --secret or --remove-secret")
        patch: ProfilePatch = _checked(ProfilePatch, values)

        async def updated(db: Pool, vault: Vault, user_id: UUID | None) -> BaseModel:
            return await profiles.update_profile(
                db, vault, user_id=user_id, profile_id=profile_id, patch=patch
            )

        return updated
    if command == "activate":

        async def activated(db: Pool, vault: Vault, user_id: UUID | None) -> BaseModel:
            return await profiles.activate_profile(db, user_id=user_id, profile_id=profile_id)

        return activated
    if command == "show":

        async def shown(db: Pool, vault: Vault, user_id: UUID | None) -> BaseModel:
            return await profiles.get_profile(db, user_id=user_id, profile_id=profile_id)

        return shown

    async def deleted(db: Pool, vault: Vault, user_id: UUID | None) -> None:
        await profiles.delete_profile(db, user_id=user_id, profile_id=profile_id)

    return deleted


__all__ = ["run"]
