"""The OpenAPI 3.1 document, generated from the same pydantic models the routes use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.schemas import ErrorBody, Health, TokenCreated, UserCreated
from dal.records import (
    Conversation,
    ConversationDraft,
    ConversationPage,
    ConversationPatch,
    CopiedThread,
    Message,
    MessageDraft,
    MessagePage,
    MessagePatch,
    Pruned,
    SavedCheckpoint,
    Thread,
    ThreadCopy,
    ThreadHistory,
    ThreadPage,
    ThreadPrune,
    ThreadState,
    ThreadStateDraft,
    TokenDraft,
    User,
    UserDraft,
    UserPatch,
)

Auth = Literal["none", "user", "admin"]


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    summary: str
    auth: Auth = "user"
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    query: tuple[tuple[str, str], ...] = ()  # (name, description), integers unless in text
    text: tuple[str, ...] = ("cursor",)  # the query parameters that are strings
    errors: tuple[int, ...] = ()
    # Another success status with the same response body, and what it means.
    also: tuple[int, str] | None = None


_CONV = "/v1/conversations/{conversation_id}"
_MSG = _CONV + "/messages/{message_id}"
_THREAD = "/v1/threads/{thread_id}"
# Path parameters that are any string (the others are UUIDs): LangGraph's ids.
_TEXT_PATH = frozenset({"thread_id", "checkpoint_id"})
# Request bodies required on POST (the others may be empty: {} is assumed).
_REQUIRED_POST_BODIES = (MessageDraft, UserDraft, ThreadCopy, ThreadPrune)
_NS = ("checkpoint_ns", 'checkpoint namespace (default "": the root graph)')

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "get",
        "/health",
        "Database reachable and migrations current",
        "none",
        None,
        Health,
        errors=(503,),
    ),
    Operation(
        "post",
        "/v1/users",
        "Create a user and their first token",
        "admin",
        UserDraft,
        UserCreated,
        201,
        errors=(409,),
    ),
    Operation("get", "/v1/users/{user_id}", "Get a user", "admin", None, User, errors=(404,)),
    Operation(
        "patch",
        "/v1/users/{user_id}",
        "Update a user's profile",
        "admin",
        UserPatch,
        User,
        errors=(404,),
    ),
    Operation(
        "post",
        "/v1/users/{user_id}/deactivate",
        "Deactivate a user (tokens stop working)",
        "admin",
        None,
        User,
        errors=(404,),
    ),
    Operation("get", "/v1/me", "The caller", response=User),
    Operation("patch", "/v1/me", "Update the caller's profile", body=UserPatch, response=User),
    Operation(
        "post",
        "/v1/tokens",
        "Issue a new token for the caller",
        body=TokenDraft,
        response=TokenCreated,
        status=201,
    ),
    Operation(
        "delete",
        "/v1/tokens/{token_id}",
        "Revoke one of the caller's tokens",
        status=204,
        errors=(404,),
    ),
    Operation(
        "post",
        "/v1/conversations",
        "Create a conversation",
        body=ConversationDraft,
        response=Conversation,
        status=201,
        errors=(409,),
    ),
    Operation(
        "get",
        "/v1/conversations",
        "List conversations, most recent activity first",
        response=ConversationPage,
        query=(
            ("limit", "page size, 1-200 (default 50)"),
            ("cursor", "next_cursor of the previous page"),
        ),
    ),
    Operation(
        "get", _CONV, "Get a conversation (ETag: its version)", response=Conversation, errors=(404,)
    ),
    Operation(
        "patch",
        _CONV,
        "Update a conversation (If-Match: version -> 412 when stale)",
        body=ConversationPatch,
        response=Conversation,
        errors=(404, 412),
    ),
    Operation("delete", _CONV, "Delete a conversation and its messages", status=204, errors=(404,)),
    Operation(
        "post",
        _CONV + "/messages",
        "Append a message (201); a retried id returns the stored message (200)",
        body=MessageDraft,
        response=Message,
        status=201,
        errors=(404,),
        also=(200, "Already stored (a retry of this id): the stored message"),
    ),
    Operation(
        "get",
        _CONV + "/messages",
        "A page of messages, oldest first",
        response=MessagePage,
        query=(
            ("limit", "page size, 1-200 (default 50)"),
            ("before", "the page just before this seq"),
            ("after", "the page just after this seq"),
        ),
        errors=(404,),
    ),
    Operation("get", _MSG, "Get a message", response=Message, errors=(404,)),
    Operation(
        "patch",
        _MSG,
        "Edit a message: replace parts, append parts while streaming, metadata, status",
        body=MessagePatch,
        response=Message,
        errors=(404, 409),
    ),
    Operation("delete", _MSG, "Delete a message", status=204, errors=(404,)),
    Operation(
        "get",
        "/v1/threads",
        "List the caller's agent threads, most recently updated first",
        response=ThreadPage,
        query=(
            ("limit", "page size, 1-200 (default 50)"),
            ("cursor", "next_cursor of the previous page"),
        ),
    ),
    Operation("get", _THREAD, "Get a thread", response=Thread, errors=(404,)),
    Operation(
        "delete", _THREAD, "Delete a thread and all its checkpoints", status=204, errors=(404,)
    ),
    Operation(
        "get",
        _THREAD + "/state",
        "The thread's newest checkpoint, values and pending writes as JSON",
        response=ThreadState,
        query=(_NS,),
        text=("checkpoint_ns",),
        errors=(404,),
    ),
    Operation(
        "put",
        _THREAD + "/state",
        "Save JSON state as the thread's new newest checkpoint (the thread is created if new)",
        body=ThreadStateDraft,
        response=SavedCheckpoint,
        status=201,
        errors=(404, 409),
    ),
    Operation(
        "get",
        _THREAD + "/history",
        "The thread's checkpoints, newest first, as JSON",
        response=ThreadHistory,
        query=(
            ("limit", "page size, 1-200 (default 20)"),
            ("before", "only checkpoints older than this checkpoint id"),
            (
                "metadata",
                'only checkpoints whose metadata contains this JSON object, e.g. {"step": 2}',
            ),
            _NS,
        ),
        text=("before", "metadata", "checkpoint_ns"),
        errors=(404,),
    ),
    Operation(
        "get",
        _THREAD + "/checkpoints/{checkpoint_id}",
        "One checkpoint of the thread as JSON",
        response=ThreadState,
        query=(_NS,),
        text=("checkpoint_ns",),
        errors=(404,),
    ),
    Operation(
        "post",
        _THREAD + "/copy",
        "Copy the thread's checkpoints (all, or the newest of each namespace) to a new thread",
        body=ThreadCopy,
        response=CopiedThread,
        status=201,
        errors=(404, 409),
    ),
    Operation(
        "post",
        _THREAD + "/prune",
        "Delete the thread's checkpoints: all, or all but the newest of each namespace",
        body=ThreadPrune,
        response=Pruned,
        errors=(404, 409),
    ),
)

_ERRORS = {
    400: "Malformed JSON or header",
    401: "Missing or invalid token",
    403: "Not allowed with this token",
    404: "Not found (or another user's)",
    409: "Conflict",
    412: "Stale version",
    413: "Body too large",
    415: "Body is not JSON",
    422: "Validation error",
    503: "Database unavailable (see Retry-After)",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _operation(op: Operation) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string"}
            if name in _TEXT_PATH
            else {"type": "string", "format": "uuid"},
        }
        for name in (part[1:-1] for part in op.path.split("/") if part.startswith("{"))
    ]
    for name, description in op.query:
        schema = {"type": "string"} if name in op.text else {"type": "integer"}
        params.append({"name": name, "in": "query", "description": description, "schema": schema})
    if op.method == "patch" and op.path == _CONV:
        params.append(
            {
                "name": "If-Match",
                "in": "header",
                "schema": {"type": "string"},
                "description": 'expected version, e.g. "3"',
            }
        )
    responses: dict[str, Any] = {
        str(op.status): {
            "description": "OK",
            **({"content": _json(op.response)} if op.response else {}),
        }
    }
    if op.also is not None and op.response is not None:
        status, description = op.also
        responses[str(status)] = {"description": description, "content": _json(op.response)}
    codes = set(op.errors) | {503}
    if op.auth != "none":
        codes |= {401}
    if op.auth == "admin" or op.path == "/v1/me":
        codes |= {403}
    if op.body is not None:
        codes |= {400, 413, 415, 422}
    if op.query:
        codes |= {422}
    for code in sorted(codes):
        if op.path == "/health" and code == 503:
            responses["503"] = {"description": _ERRORS[503], "content": _json(Health)}
            continue
        responses[str(code)] = {"description": _ERRORS[code], "content": _json(ErrorBody)}
    out: dict[str, Any] = {"summary": op.summary, "parameters": params, "responses": responses}
    if op.body is not None:
        out["requestBody"] = {
            "required": op.method != "post" or op.body in _REQUIRED_POST_BODIES,
            "content": _json(op.body),
        }
    out["security"] = [] if op.auth == "none" else [{"bearer": []}]
    return out


def build_openapi() -> dict[str, Any]:
    """The whole document; models become components (input and output shapes alike)."""
    models: set[type[BaseModel]] = {ErrorBody}
    for op in OPERATIONS:
        models |= {m for m in (op.body, op.response) if m is not None}
    ordered = sorted(models, key=lambda m: m.__name__)
    _, schema = models_json_schema(
        [(m, "validation") for m in ordered], ref_template="#/components/schemas/{model}"
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Mnemo",
            "version": "0.1.0",
            "description": "Memory for AI agents and chat products: users, conversations, "
            "messages (Vercel AI SDK UI message parts), agent threads and their checkpoints "
            "(LangGraph's, or JSON state), on PostgreSQL.",
        },
        "paths": paths,
        "components": {
            "schemas": schema.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
