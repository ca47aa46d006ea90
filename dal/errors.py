"""Domain errors, and the one place that translates asyncpg/PostgreSQL errors into them."""

from __future__ import annotations

from typing import Any

import asyncpg


class DomainError(Exception):
    """Base of every error a gateway raises on purpose. ``code`` is stable for clients."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    code = "not_found"

    def __init__(self, what: str, key: object = None) -> None:
        super().__init__(f"{what} not found" if key is None else f"{what} {key} not found")
        self.what = what


class Conflict(DomainError):
    code = "conflict"

    def __init__(self, message: str, *, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint


class StaleVersion(Conflict):
    """An optimistic-concurrency check failed: the row changed since the caller read it."""

    code = "stale_version"


class IdempotencyMismatch(Conflict):
    """A create reused an id with other content (or an id that is not the caller's to reuse)."""

    code = "idempotency_mismatch"


class IllegalTransition(Conflict):
    """A task's status change its lifecycle does not allow (README "Tasks"): refused by the
    database itself (SQLSTATE MNT01, raised by the trigger mnemo_task_row), answered 409."""

    code = "illegal_transition"


class LeaseLost(Conflict):
    """A worker no longer holds the task it reports on: its lease expired (the task may run
    elsewhere now), or the task was cancelled. Nothing was changed."""

    code = "lease_lost"


class InvalidInput(DomainError):
    code = "invalid_input"


class TooLarge(InvalidInput):
    """A value over a configured size limit (e.g. APP_MAX_MESSAGE_BYTES); ``code`` names it."""

    code = "too_large"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class ToolCallUnpaired(InvalidInput):
    """A message that would break tool-call pairing in a conversation whose tool_integrity is
    'reject' (README "Tool-call integrity"); the message names the call."""

    code = "tool_call_unpaired"


class LimitReached(Conflict):
    """A count is at its configured limit (e.g. APP_MAX_TOKENS_PER_USER): nothing more can be
    added until something is removed. ``code`` names the limit."""

    code = "limit_reached"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class NotPermitted(DomainError):
    """A member of the conversation whose role may not do this (README "Roles"); someone who
    is not a member gets NotFound instead, which tells nothing."""

    code = "forbidden"


class OverLimit(LimitReached):
    """A configured message limit is reached (APP_MAX_MESSAGES_PER_CONVERSATION or _PER_USER):
    answered 429, ``code`` limit_reached, the message naming the limit."""

    code = "limit_reached"


class Unavailable(DomainError):
    code = "unavailable"


class EncryptionKeyMismatch(Unavailable):
    """A stored secret does not decrypt with the configured key(s) (dal.vault): the key is not
    the one it was written with. Answered 503 (the server's configuration, not the request, is
    at fault) with code ``encryption_key_mismatch``; the message names the setting."""

    code = "encryption_key_mismatch"


class Timeout(DomainError):
    code = "timeout"


# SQLSTATE -> domain error. Anything not listed is a bug and propagates untouched.
_BY_STATE: dict[str, type[DomainError]] = {
    "23505": Conflict,  # unique_violation
    "23503": NotFound,  # foreign_key_violation: the referenced row is missing
    "23502": InvalidInput,  # not_null_violation
    "23514": InvalidInput,  # check_violation
    "22P02": InvalidInput,  # invalid_text_representation
    "22P05": InvalidInput,  # untranslatable_character (\u0000 in jsonb)
    "22021": InvalidInput,  # character_not_in_repertoire (NUL byte in text)
    "22001": InvalidInput,  # string_data_right_truncation
    "22003": InvalidInput,  # numeric_value_out_of_range
    "22023": InvalidInput,  # invalid_parameter_value
    "2202E": InvalidInput,  # array_subscript_error
    "57014": Timeout,  # query_canceled (statement_timeout)
    "42P01": Unavailable,  # undefined_table: the schema is not migrated (yet)
    "53300": Unavailable,  # too_many_connections
    "57P01": Unavailable,  # admin_shutdown
    "57P02": Unavailable,  # crash_shutdown
    "57P03": Unavailable,  # cannot_connect_now (starting up / shutting down)
    "MNT01": IllegalTransition,  # ours: mnemo_task_row refused a task's status change
}

_MESSAGES: dict[type[DomainError], str] = {
    NotFound: "a referenced row does not exist",
    Conflict: "conflicts with existing data",
    InvalidInput: "invalid value",
    Timeout: "the database took too long to answer",
    Unavailable: "the database is unavailable",
}


def translate(exc: BaseException) -> DomainError | None:
    """The domain error for a driver/server error, or None when it is a bug to surface."""
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, asyncpg.DataError):
        # A Python value the driver cannot encode (e.g. an integer beyond 64 bits). asyncpg
        # raises it from the encoder's own error, whose text is the reason, e.g. "value out of
        # int64 range"; its own message quotes the value, which a 422 never echoes back.
        # (Cut short all the same: an encoder's reason is short, a body may not be.)
        reason = str(exc.__cause__ or "")[:200] or "cannot be stored"
        return InvalidInput(f"invalid value: {reason}")
    if isinstance(exc, asyncpg.InterfaceError):
        # Misuse of the driver: a bug. (A connection lost under us, or a pool closing, is
        # raised by dal.database as Unavailable, which is also an InterfaceError.)
        return None
    if isinstance(exc, TimeoutError):
        # Client-side: no connection within DB_CONNECTION_TIMEOUT, or no answer within
        # DB_QUERY_TIMEOUT + DB_ANSWER_MARGIN (the server's own limit is 57014, below).
        return Unavailable("the database did not answer in time")
    state: str = getattr(exc, "sqlstate", None) or ""
    # OSError covers refused connections and connect/acquire timeouts (TimeoutError).
    if state.startswith("08") or isinstance(exc, OSError):
        return Unavailable("the database is unreachable")
    if state.startswith("54"):
        # Program limits: a value larger than PostgreSQL can index or hold (a B-tree entry
        # over about 2,700 bytes, a statement too deeply nested...). The client sent it. The
        # server's message names the limit, never the value.
        limit: str = getattr(exc, "message", None) or type(exc).__name__
        return InvalidInput(f"a value exceeds a database limit: {limit}")
    kind = _BY_STATE.get(state)
    if kind is None:
        return None
    if state == "42P01":
        return Unavailable("the database schema is not migrated: run python -m dal.migrate")
    detail: Any = getattr(exc, "message", None) or str(exc)
    if kind is IllegalTransition:
        return IllegalTransition(str(detail))  # the trigger's own words: which change, no data
    if kind is NotFound:
        return NotFound(f"referenced row ({getattr(exc, 'constraint_name', None) or 'key'})")
    if kind is Conflict:
        constraint = getattr(exc, "constraint_name", None)
        return Conflict(f"{_MESSAGES[kind]} ({constraint})", constraint=constraint)
    if kind is InvalidInput:
        return InvalidInput(f"{_MESSAGES[kind]}: {detail}")
    return kind(_MESSAGES[kind])


class ImageRefused(InvalidInput):
    """No thumbnail can be made of an image: corrupt, truncated, of a kind not read, or over
    APP_MAX_IMAGE_PIXELS (a decompression bomb). Answered 422 ``image_refused``."""

    code = "image_refused"
