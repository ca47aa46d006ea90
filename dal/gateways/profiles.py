"""Runtime profiles (README "Runtime profiles"): create, get, list, update, activate, copy and
delete a user's profiles (``user_id``) or the system's (``user_id`` None), and ``resolve``
what a kind comes to for a user: their active profile, else the system's, else the
environment. Secrets are encrypted with the ``Vault`` before they reach the database and
decrypted only by ``resolve``; profiles read back carry masked hints (queries/profiles.sql)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from dal.database import Executor, Record, fetch_all, fetch_one, fetch_value
from dal.errors import InvalidInput, NotFound, Unavailable
from dal.ids import new_id
from dal.queries import Q
from dal.records.profiles import (
    Effective,
    Profile,
    ProfileCopy,
    ProfileDraft,
    ProfileKind,
    ProfileList,
    ProfilePatch,
    SecretHint,
    Source,
    kind_of,
    mask,
)

_log = logging.getLogger(__name__)


class Cipher(Protocol):
    """What encrypts secrets (dal.vault.Vault): decrypt raises EncryptionKeyMismatch for a
    token the key did not write."""

    def encrypt(self, secret: str) -> str: ...

    def decrypt(self, token: str) -> str: ...


# profiles.scope of the system's profiles (no user has the nil UUID).
SYSTEM_SCOPE = UUID(int=0)
MAX_PROFILES_LISTED = 1000


def _scope(user_id: UUID | None) -> UUID:
    return SYSTEM_SCOPE if user_id is None else user_id


def _kind(name: str) -> ProfileKind:
    try:
        return kind_of(name)
    except ValueError as exc:
        raise InvalidInput(f"kind: {exc}") from None


def _settings(kind: ProfileKind, values: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return kind.check_settings(values)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def _sealed(kind: ProfileKind, vault: Cipher, secrets: Mapping[str, str]) -> dict[str, Any]:
    """The secrets as stored: {name: {ciphertext, hint}} (set_at is added by the query)."""
    try:
        kind.check_secret_names(secrets)
    except ValueError as exc:
        raise InvalidInput(f"secrets: {exc}") from None
    return {
        name: {"ciphertext": vault.encrypt(value), "hint": mask(value)}
        for name, value in secrets.items()
    }


def _profile(row: Record) -> Profile:
    values = dict(row.items())
    values["secrets"] = [
        SecretHint.from_values(
            {
                "name": name,
                "hint": hint["hint"],
                "set_at": datetime.fromisoformat(hint["set_at"]).astimezone(UTC),
            }
        )
        for name, hint in sorted(values["secrets"].items())
    ]
    return Profile.from_values(values)


async def insert_profile(
    db: Executor, vault: Cipher, *, user_id: UUID | None, draft: ProfileDraft
) -> Profile:
    """Create a profile (inactive) for a user, or the system's (``user_id`` None).
    InvalidInput for an unknown kind, settings its model refuses or a secret it has not;
    Conflict if the name is taken for the kind."""
    kind = _kind(draft.kind)
    settings = _settings(kind, draft.settings)
    secrets = _sealed(kind, vault, draft.secrets)
    row = await fetch_one(
        db, Q["insert_profile"], user_id, new_id(), kind.name, draft.name, settings, secrets
    )
    assert row is not None
    return _profile(row)


async def get_profile(db: Executor, *, user_id: UUID | None, profile_id: UUID) -> Profile:
    """One of the scope's profiles; NotFound if missing or another scope's."""
    row = await fetch_one(db, Q["get_profile"], _scope(user_id), profile_id)
    if row is None:
        raise NotFound("profile", profile_id)
    return _profile(row)


async def list_profiles(
    db: Executor, *, user_id: UUID | None, kind: str | None = None, limit: int = 100
) -> ProfileList:
    """The scope's profiles by kind, then name (of one kind when given), ``limit`` at most
    (1 to 1000): ``has_more`` says whether more follow."""
    if not 1 <= limit <= MAX_PROFILES_LISTED:
        raise InvalidInput(f"limit must be 1 to {MAX_PROFILES_LISTED}")
    if kind is not None:
        _kind(kind)
    rows = await fetch_all(db, Q["list_profiles"], _scope(user_id), kind, limit + 1)
    return ProfileList.from_values(
        {"items": [_profile(row) for row in rows[:limit]], "has_more": len(rows) > limit}
    )


async def update_profile(
    db: Executor, vault: Cipher, *, user_id: UUID | None, profile_id: UUID, patch: ProfilePatch
) -> Profile:
    """Change a profile: ``name``; ``settings`` (replaced whole, checked against the kind);
    each secret of ``secrets`` set, or removed when None; a secret left out is kept.
    NotFound if missing or another scope's; InvalidInput, Conflict as ``insert_profile``."""
    current = await get_profile(db, user_id=user_id, profile_id=profile_id)
    kind = _kind(current.kind)
    settings = None if patch.settings is None else _settings(kind, patch.settings)
    given = patch.secrets or {}
    removed = sorted(name for name, value in given.items() if value is None)
    kept = {name: value for name, value in given.items() if value is not None}
    try:
        kind.check_secret_names(removed)
    except ValueError as exc:
        raise InvalidInput(f"secrets: {exc}") from None
    sealed = _sealed(kind, vault, kept)
    args = (_scope(user_id), profile_id, patch.name, settings, sealed, removed)
    row = await fetch_one(db, Q["update_profile"], *args)
    if row is None:  # deleted since it was read
        raise NotFound("profile", profile_id)
    return _profile(row)


async def count_profiles_with_secrets(db: Executor) -> int:
    """How many profiles of every scope hold a secret."""
    return int(await fetch_value(db, Q["count_profiles_with_secrets"]))


async def list_profile_secrets_for_rotation(
    db: Executor, *, after_id: UUID, limit: int
) -> list[tuple[UUID, dict[str, Any]]]:
    """The next ``limit`` profiles (every scope) after ``after_id`` holding a secret, by id:
    (id, secrets as stored, ciphertexts included), each row locked until the caller's
    transaction ends (call it in one)."""
    rows = await fetch_all(db, Q["list_profile_secrets_for_rotation"], after_id, limit)
    return [(row["id"], row["secrets"]) for row in rows]


async def update_profile_secrets_rotated(
    db: Executor, *, secrets: Mapping[UUID, Mapping[str, Any]]
) -> int:
    """Write back each profile's re-encrypted secrets (as stored: ciphertext, hint, set_at),
    in the transaction that locked them; how many rows were written."""
    if not secrets:
        return 0
    payload = {str(profile_id): dict(stored) for profile_id, stored in secrets.items()}
    return len(await fetch_all(db, Q["update_profile_secrets_rotated"], payload))


async def activate_profile(db: Executor, *, user_id: UUID | None, profile_id: UUID) -> Profile:
    """Make a profile the active one of its kind in its scope, and every other one of that
    kind there inactive, in one statement (concurrent activations leave exactly one active:
    the last). NotFound if missing or another scope's."""
    row = await fetch_one(db, Q["update_profile_active"], _scope(user_id), profile_id)
    if row is None:
        raise NotFound("profile", profile_id)
    return _profile(row)


async def copy_profile(
    db: Executor, *, user_id: UUID | None, profile_id: UUID, copy: ProfileCopy
) -> Profile:
    """A copy of a profile, inactive, with its secrets, named ``copy.name`` (None: the
    original's name + " (copy)"). NotFound if missing or another scope's; Conflict if the
    name is taken."""
    args = (_scope(user_id), profile_id, new_id(), copy.name)
    row = await fetch_one(db, Q["copy_profile"], *args)
    if row is None:
        raise NotFound("profile", profile_id)
    return _profile(row)


async def delete_profile(db: Executor, *, user_id: UUID | None, profile_id: UUID) -> None:
    """Delete a profile; NotFound if missing or another scope's."""
    if await fetch_value(db, Q["delete_profile"], _scope(user_id), profile_id) is None:
        raise NotFound("profile", profile_id)


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a kind comes to for a user: its settings and secrets in clear (for the code that
    calls the LLM, the feed...; never to be output or logged: ``effective`` masks them)."""

    kind: str
    source: Source
    profile_id: UUID | None
    name: str | None
    settings: dict[str, Any]
    secrets: dict[str, str] = field(repr=False)

    def effective(self) -> Effective:
        """The same with each secret masked: what the API shows."""
        return Effective.from_values(
            {
                "kind": self.kind,
                "source": self.source,
                "profile_id": self.profile_id,
                "name": self.name,
                "settings": self.settings,
                "secrets": {name: mask(value) for name, value in sorted(self.secrets.items())},
            }
        )


def from_environment(kind: ProfileKind, environ: Mapping[str, str] | None = None) -> Resolved:
    """The kind as the environment variables of its registration give it (README "Runtime
    profiles"): settings the kind's model accepts, else none (a warning logged)."""
    environ = os.environ if environ is None else environ
    fields = kind.settings.model_fields
    values = {
        name: environ[var]
        for name, var in kind.environment.items()
        if name in fields and environ.get(var, "").strip()
    }
    secrets = {
        name: environ[var]
        for name, var in kind.environment.items()
        if name in kind.secrets and environ.get(var, "")
    }
    try:
        settings = kind.settings.model_validate(values, strict=False).model_dump(mode="json")
    except ValueError:
        names = ", ".join(kind.environment[name] for name in fields if name in kind.environment)
        _log.warning(
            "profile kind %s: the environment (%s) gives no valid settings", kind.name, names
        )
        settings = {}
    return Resolved(kind.name, "environment", None, None, settings, secrets)


def unavailable_fallback(kind: str, exc: Unavailable) -> Resolved:
    """What ``kind`` comes to while the database is unavailable: the environment, with a
    warning logged."""
    registered = _kind(kind)
    _log.warning(
        "profile kind %s: the database is unavailable (%s); using the environment",
        registered.name,
        exc.message,
    )
    return from_environment(registered)


async def resolve(
    db: Executor, vault: Cipher, *, kind: str, user_id: UUID | None, fallback: bool = True
) -> Resolved:
    """What ``kind`` comes to for a user (``user_id`` None: for the system): their active
    profile of the kind, else the system's, else the environment. When the database is
    unavailable (no connection within DB_CONNECTION_TIMEOUT...), the environment, with a
    warning logged (``fallback`` False: Unavailable raised instead). EncryptionKeyMismatch if
    a secret does not decrypt with the key. Cached: dal.usecases.profiles.Resolver."""
    registered = _kind(kind)
    try:
        row = await fetch_one(db, Q["get_active_profile"], user_id, registered.name)
    except Unavailable as exc:
        if not fallback:
            raise
        return unavailable_fallback(registered.name, exc)
    if row is None:
        return from_environment(registered)
    secrets = {name: vault.decrypt(stored["ciphertext"]) for name, stored in row["secrets"].items()}
    source: Source = "system" if row["user_id"] is None else "user"
    return Resolved(registered.name, source, row["id"], row["name"], row["settings"], secrets)
