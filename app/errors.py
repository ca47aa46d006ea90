"""The one place where errors become HTTP responses: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from dal.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    NotPermitted,
    OverLimit,
    StaleVersion,
    Timeout,
    TooLarge,
    Unavailable,
)

_log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2


class Unauthorized(DomainError):
    """No token, or one that authorizes nothing (invalid, revoked, expired, user deactivated);
    or credentials that sign nobody in. ``code`` may say which (token_expired,
    invalid_credentials, refresh_token_reused...)."""

    code = "unauthorized"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class Forbidden(DomainError):
    """A valid token that may not do this (the admin token on a user's route, or the reverse);
    ``code`` may say why (signup_closed)."""

    code = "forbidden"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class Busy(Unavailable):
    """This process is doing as much of something costly as it may (hashing passwords): 503
    with Retry-After, code ``busy``."""

    code = "busy"


class LoginLocked(DomainError):
    """Sign-ins of this username from this address are locked for ``retry_after`` seconds
    (README "Identity"): 429 with Retry-After; the password was not checked."""

    code = "login_locked"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# Looked up along the class hierarchy, most specific first (StaleVersion before Conflict).
STATUS: dict[type[DomainError], int] = {
    NotFound: 404,
    OverLimit: 429,
    LoginLocked: 429,
    NotPermitted: 403,
    StaleVersion: 412,
    Conflict: 409,
    TooLarge: 413,
    InvalidInput: 422,
    Unauthorized: 401,
    Forbidden: 403,
    Timeout: 504,
    Unavailable: 503,
}


class HttpError(DomainError):
    """An error of the HTTP layer itself (malformed JSON, wrong media type, body too large)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return Response(
        orjson.dumps({"error": body}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def status_of(exc: DomainError) -> int:
    if isinstance(exc, HttpError):
        return exc.status
    for kind in type(exc).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 500


async def domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    status = status_of(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, Unavailable):
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    if isinstance(exc, LoginLocked):
        headers["Retry-After"] = str(max(1, exc.retry_after))
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if status == 413:
        # Refused before its body was read to the end (an upload stops at its limit): the
        # connection closes after the answer instead of reading the rest only to discard it.
        headers["Connection"] = "close"
    return error_response(status, exc.code, exc.message, headers=headers)


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {
            "field": ".".join(str(part) for part in error["loc"]),
            "message": error["msg"],
            "type": error["type"],
        }
        for error in exc.errors(include_url=False, include_input=False)
    ]


async def validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    details = validation_details(exc)
    first = details[0]
    message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return error_response(422, "validation_error", message, details=details)


async def http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def client_disconnected(request: Request, exc: Exception) -> Response:
    """The client went away before its whole body arrived (or its body timed out, see
    app/server.py): not an error of the server. The answer goes nowhere."""
    _log.debug("%s %s: the client left before sending its body", request.method, request.url.path)
    return Response(status_code=400)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    _log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal error")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    DomainError: domain_error,
    ValidationError: validation_error,
    HTTPException: http_exception,
    ClientDisconnect: client_disconnected,
    Exception: unexpected_error,
}
