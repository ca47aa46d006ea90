"""Schemathesis over every route of the app: with a user's token, with the admin token, and
with another user's token on the first user's ids (which must leave them as they were).

The engine runs what ``st run --checks all`` runs (examples, coverage, fuzzing and stateful
phases; every check: no server error, status codes, content types, response schemas and
headers, positive and negative data, auth, methods), in-process against the ASGI app on this
test's own migrated database. Users, tokens, conversations, messages, files and threads
with checkpoints exist first, and their ids are drawn as path parameters half the time, so the
routes answer with real data, not only 404s. Seeded and bounded, so it runs the same cases
every time, in seconds.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from PIL import Image
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema
from schemathesis.python import asgi
from starlette.applications import Starlette

from app import create_app
from app.openapi import build_openapi
from dal.settings import Settings
from tests.app.conftest import (
    ADMIN_TOKEN,
    Caller,
    Json,
    TestClient,
    append,
    make_conversation,
    make_user,
    messages_url,
)

MAX_EXAMPLES = 6
SEED = 20261202

# Statuses a route may answer to a request the document calls valid, beyond schemathesis'
# defaults (2xx, 3xx, 401, 403, 404, 409, 429, 5xx; 5xx then fails not_a_server_error):
# 412 is a stale If-Match, 416 a Range past the end of a file, which no document can foresee.
_ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "412", "416", "429", "5xx"]
# Constraints OpenAPI cannot state, so a request the document calls valid may still be 422:
# a cursor is opaque (only one the API gave back is valid), and the message page takes
# before or after, not both (parameters cannot exclude each other).
# Found in the document, so a new list is covered without an edit here.
_OPAQUE = {"cursor"}
_EXCLUSIVE = {"before", "after"}
# A profile's settings and secrets are those of its kind, which a patch does not name (a
# draft does: its schema has a variant per kind).
_KIND_DEPENDENT = [
    "PATCH /v1/profiles/{profile_id}",
    "PATCH /v1/admin/profiles/{system_profile_id}",
]
# A logout without a refresh token signs out the session of the access token sent: with an API
# token (what these runs send) there is none, 422; the document cannot say which token is which.
_TOKEN_DEPENDENT = ["POST /v1/auth/logout"]
# The seeded users' password: a password change needs the current one (drawn half the time).
PASSWORD = "seeded password"


def _opaque_or_exclusive() -> list[str]:
    """The operations with an opaque cursor or with parameters that exclude each other."""
    return sorted(
        f"{method.upper()} {path}"
        for path, item in build_openapi()["paths"].items()
        for method, operation in item.items()
        if (names := {p["name"] for p in operation.get("parameters", [])})
        and (names & _OPAQUE or _EXCLUSIVE <= names)
    )


# The routes of each kind of token; with the other kind they answer 403 before reading
# anything, so a few fuzzed cases show it (the coverage phase would only repeat it).
_ADMIN_ROUTES = "^/v1/(users|admin/)"
_USER_ROUTES = "^/v1/(?!users|admin/)"


@dataclass(frozen=True)
class Known:
    """A failure found here that belongs to a fix still under way elsewhere: left out of the
    verdict, with its reason, until that fix lands (then the entry goes)."""

    check: str
    operation: str
    matches: Callable[[Any, Any], bool]  # (case, response)
    reason: str


def _body(case: Any) -> dict[str, Any]:
    return case.body if isinstance(case.body, dict) else {}


KNOWN: list[Known] = []


@dataclass(frozen=True)
class Seeded:
    """Real rows for the routes to find: the ids schemathesis draws path parameters from.

    ``ids`` are read and edited; ``spares`` are what deletes and prunes may destroy (they
    would otherwise leave the readers only 404s).
    """

    caller: Caller
    # Another user, who owns none of the ids.
    other: Caller
    ids: dict[str, list[str]]
    spares: dict[str, list[str]]


@dataclass(frozen=True)
class Failure:
    check: str
    request: str
    response: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.request}\n  -> {self.response}\n  {self.message}"


@pytest.fixture
def app(settings: Settings) -> Iterator[Starlette]:
    # A live event stream ends only when its client leaves, which the engine (reading whole
    # answers) never does: here each ends after a moment, as a stream past its lifetime does
    # (tests/app/test_event_streams.py follows them live).
    # Sign-ins fail often here (a fuzzed current password): no lockout in the way; and cheap
    # password hashes.
    app = create_app(
        settings.model_copy(
            update={
                "app_event_stream_max_seconds": 0.05,
                "app_login_free_failures": 1000,
                "app_argon2_time_cost": 1,
                "app_argon2_memory_kib": 64,
                "app_argon2_parallelism": 1,
            }
        )
    )
    try:
        yield app
    finally:
        # The engine keeps the lifespan of each app it called open (its pool with it).
        asgi.shutdown_lifespans()


def _save_state(client: TestClient, caller: Caller, thread: str, step: int) -> str:
    saved = client.put(
        f"/v1/threads/{thread}/state",
        json={"values": {"step": step, "notes": ["a", {"b": 1}]}},
        headers=caller.headers,
    )
    assert saved.status_code == 201, saved.text
    checkpoint_id: str = saved.json()["checkpoint_id"]
    return checkpoint_id


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), "orange").save(buffer, "PNG")
    return buffer.getvalue()


def _upload(
    client: TestClient, caller: Caller, conversation_id: str, data: bytes, kind: str
) -> Json:
    uploaded = client.post(
        f"/v1/conversations/{conversation_id}/attachments",
        content=data,
        headers={**caller.headers, "Content-Type": kind},
    )
    assert uploaded.status_code == 201, uploaded.text
    found: Json = uploaded.json()
    return found


def _seed(app: Starlette) -> Seeded:
    with TestClient(app) as client:
        user, token = make_user(client, "alice", display_name="Alice")
        caller = Caller(user, token)
        other = Caller(*make_user(client, "bob"))
        for user_id in (caller.id, other.id):  # what body.current_password is drawn from
            password = {"password": PASSWORD}
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            set_password = client.put(f"/v1/users/{user_id}/password", json=password, headers=admin)
            assert set_password.status_code == 204, set_password.text
        issued = client.post("/v1/tokens", json={"name": "spare"}, headers=caller.headers)
        assert issued.status_code == 201, issued.text
        conversations = [make_conversation(client, caller, title=f"c{i}")["id"] for i in range(4)]
        # Members besides the owner: carol of the conversations read and edited (her role is
        # changed), dave, a spare, of every conversation (he is removed).
        carol, dave = Caller(*make_user(client, "carol")), Caller(*make_user(client, "dave"))
        for conversation_id, member in [
            *((c, carol) for c in conversations[:2]),
            *((c, dave) for c in conversations),
        ]:
            added = client.post(
                f"/v1/conversations/{conversation_id}/members",
                json={"user_id": member.id},
                headers=caller.headers,
            )
            assert added.status_code == 201, added.text
        first = conversations[0]
        messages = [append(client, caller, first, f"m{i}")["id"] for i in range(5)]
        # Feedback to read and to withdraw.
        for message_id in messages:
            rated = client.put(
                f"{messages_url(first)}/{message_id}/feedback",
                json={"rating": "up"},
                headers=caller.headers,
            )
            assert rated.status_code == 201, rated.text
        streaming = client.post(
            messages_url(first),
            json={"role": "assistant", "parts": [], "status": "streaming"},
            headers=caller.headers,
        )
        assert streaming.status_code == 201, streaming.text
        # Files of alice's: an image (so that its thumbnail is found too) and a text file,
        # referenced from a message of the first conversation.
        files = [
            _upload(client, caller, first, data, media_type)
            for data, media_type in ((_png(), "image/png"), (b"notes\n", "text/plain"))
        ]
        parts = [{"type": "file", "mediaType": f["media_type"], "url": f["url"]} for f in files]
        append(client, caller, first, parts=[{"type": "text", "text": "files"}, *parts])
        # Tasks of alice's: pending ones (cancelled by the run, which a second cancel answers
        # the same), one linked to the first conversation.
        task_ids = []
        for i, link in enumerate((first, None, None)):
            created = client.post(
                "/v1/tasks",
                json={"kind": "research", "title": f"t{i}", "conversation_id": link},
                headers=caller.headers,
            )
            assert created.status_code == 201, created.text
            task_ids.append(created.json()["id"])
        # Event logs with events of their own beyond those the database wrote (the tasks'
        # status, the first conversation's messages), so their pages have both.
        for log in (*(f"/v1/tasks/{t}" for t in task_ids), f"/v1/conversations/{first}"):
            appended = client.post(
                f"{log}/events",
                json={"events": [{"type": "plan", "payload": {"steps": ["a", "b"]}}]},
                headers=caller.headers,
            )
            assert appended.status_code == 201, appended.text
        threads = ["main", "agent-2", "spare-1", "spare-2"]
        checkpoints = [_save_state(client, caller, "main", step) for step in range(2)]
        # The readers' threads hold the same checkpoint ids (a copy keeps them), so that any
        # thread drawn with any checkpoint drawn is a checkpoint that exists; "reader" is drawn
        # by the checkpoint reader alone, so that no prune or delete reaches it first.
        for target in ("agent-2", READER):
            copied = client.post(
                "/v1/threads/main/copy", json={"target_thread_id": target}, headers=caller.headers
            )
            assert copied.status_code == 201, copied.text
        for thread in threads[2:]:
            for step in range(2):
                _save_state(client, caller, thread, step)
        # Workspace snapshots: two to read and change, two spares to delete.
        snapshots = []
        for i in range(4):
            saved = client.post(
                "/v1/snapshots",
                json={"name": f"s{i}", "panels": [{"query": f"q{i}"}], "conversation_id": first},
                headers=caller.headers,
            )
            assert saved.status_code == 201, saved.text
            snapshots.append(saved.json()["id"])
        # Runtime profiles, alice's and the system's: two to read and change, two spares.
        profiles: dict[str, list[str]] = {"/v1/profiles": [], "/v1/admin/profiles": []}
        for base, headers in [
            ("/v1/profiles", caller.headers),
            ("/v1/admin/profiles", {"Authorization": f"Bearer {ADMIN_TOKEN}"}),
        ]:
            for i in range(4):
                made = client.post(
                    base,
                    json={
                        "kind": "llm",
                        "name": f"p{i}",
                        "settings": {"provider": "openai", "model": "m"},
                        "secrets": {"api_key": f"sk-seeded-0123456789-{i}"},
                    },
                    headers=headers,
                )
                assert made.status_code == 201, made.text
                profiles[base].append(made.json()["id"])
        user_profiles, system_profiles = profiles["/v1/profiles"], profiles["/v1/admin/profiles"]
    return Seeded(
        caller=caller,
        other=other,
        ids={
            "user_id": [caller.id, other.id, carol.id],
            "conversation_id": conversations[:2],
            "message_id": [*messages[:3], streaming.json()["id"]],
            "thread_id": threads[:2],
            "checkpoint_id": checkpoints,
            "attachment_id": [f["id"] for f in files],
            "snapshot_id": snapshots[:2],
            "task_id": task_ids,
            "profile_id": user_profiles[:2],
            "system_profile_id": system_profiles[:2],
        },
        spares={
            "user_id": [dave.id],
            "token_id": [str(issued.json()["id"])],
            "conversation_id": conversations[2:],
            "message_id": messages[3:],
            "thread_id": threads[2:],
            "snapshot_id": snapshots[2:],
            "profile_id": user_profiles[2:],
            "system_profile_id": system_profiles[2:],
        },
    )


# The thread the checkpoint reader draws from, and no other operation.
READER = "reader"
_READ_CHECKPOINT = "GET /v1/threads/{thread_id}/checkpoints/{checkpoint_id}"

# Operations that destroy what they name draw from the spares. (Withdrawing feedback leaves
# the message it names; a PUT gives feedback back.)
_DESTRUCTIVE = "^(DELETE (?!.*/feedback$).*|POST /v1/threads/\\{thread_id\\}/prune)$"
# Changing a member's role, removing a member and deleting a message name a pair that exists
# only together: a member or message, and the conversation they are in (one of those read: the
# spare conversations may be deleted first). Both are drawn from the seeds in every case
# (drawn independently, half the time each, a pair was met a few times in a run at best, and
# a run missed the route's success), from pools where every pair exists: carol is a member
# of the conversations read, dave (a spare) of every conversation, and the messages, spares
# too, are in the first one read. Carol's role is changed in the second one only: a change to
# owner hands it over to her, and the first stays alice's.
_CHANGE_MEMBER = "PATCH /v1/conversations/{conversation_id}/members/{user_id}"
_REMOVE_MEMBER = "DELETE /v1/conversations/{conversation_id}/members/{user_id}"
_DELETE_MESSAGE = "DELETE /v1/conversations/{conversation_id}/messages/{message_id}"
_PAIRS = (  # operation, its conversations' dictionary, the other id and its dictionary
    (_CHANGE_MEMBER, "members_conversation_id", "user_id", "member_user_id"),
    (_REMOVE_MEMBER, "conversation_id", "user_id", "spare_user_id"),
    (_DELETE_MESSAGE, "messages_conversation_id", "message_id", "spare_message_id"),
)


def _bind(pools: dict[str, list[str]], prefix: str = "") -> tuple[Json, Json]:
    """The dictionaries and the path parameter bindings of these pools: half the cases draw
    their ids from them, the others are generated."""
    dictionaries = {prefix + name: {"values": ids} for name, ids in pools.items() if ids}
    parameters = {
        f"path.{name}": {"dictionary": prefix + name, "probability": 0.5}
        for name, ids in pools.items()
        if ids
    }
    return dictionaries, parameters


# The phases of an operation that destroys what it names. The coverage phase draws path values
# from every dictionary, spares or not: it pruned the readers' checkpoints before they were
# read. The examples and fuzzing phases draw from the spares half the time, and the other half
# would take ids the engine read in earlier answers (its "extra data sources"): a conversation
# listed by GET /v1/conversations was deleted, and every route of it answered 404 from then on
# (a message's deletion never met a success). So they generate the other half.
_DESTRUCTIVE_PHASES = {
    "coverage": {"enabled": False},
    "examples": {"extra-data-sources": {"responses": False}},
    "fuzzing": {"extra-data-sources": {"responses": False}},
}

# Revoking a token is tested alone: with the other operations, the engine reads token ids in
# answers (GET /v1/tokens) and revokes the caller's own, which turns the rest into 401s.
_REVOKE = "DELETE /v1/tokens/{token_id}"


def _config(token: str, seeded: Seeded, *, admin: bool, revoke: bool) -> SchemathesisConfig:
    """The run of every operation but _REVOKE, or (``revoke``) of _REVOKE alone."""
    dictionaries, parameters = _bind(seeded.ids)
    spare_dictionaries, spare_parameters = _bind(seeded.spares, "spare_")
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "headers": {"Authorization": f"Bearer {token}"},
            "workers": 1,
            "checks": {
                "enabled": True,  # --checks all
                "positive_data_acceptance": {"expected-statuses": _ACCEPTED},
            },
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "phases": {"stateful": {"max-steps": 6}},
            "dictionaries": {
                **dictionaries,
                **spare_dictionaries,
                "checkpoint_ns": {"values": [""]},  # the root graph's, where the seeds are
                # the user a member route adds: bob or carol, never alice (bob adding her to
                # his own conversation would change what she has)
                "new_member_id": {"values": seeded.ids["user_id"][1:]},
                "reader_thread_id": {"values": [READER]},
                "password": {"values": [PASSWORD]},
                # the read conversation the messages are in, spares too; carol, a member of the
                # read conversations, and the one her role is changed in (see _seed, _PAIRS)
                "messages_conversation_id": {"values": seeded.ids["conversation_id"][:1]},
                "member_user_id": {"values": seeded.ids["user_id"][2:]},
                "members_conversation_id": {"values": seeded.ids["conversation_id"][1:2]},
            },
            "parameters": {
                **parameters,
                "query.checkpoint_ns": {"dictionary": "checkpoint_ns", "probability": 0.5},
                "body.user_id": {"dictionary": "new_member_id", "probability": 0.5},
                "body.current_password": {"dictionary": "password", "probability": 0.5},
            },
            "operations": [
                {"exclude-name" if revoke else "include-name": _REVOKE, "enabled": False},
                # Before the spares' entry, which they override (the first entry that sets an
                # option decides it).
                *(
                    {
                        "include-name": name,
                        "parameters": {
                            **parameters,
                            "path.conversation_id": {"dictionary": home, "probability": 1.0},
                            f"path.{other}": {"dictionary": pool, "probability": 1.0},
                        },
                        **({"phases": _DESTRUCTIVE_PHASES} if name.startswith("DELETE") else {}),
                    }
                    for name, home, other, pool in _PAIRS
                ),
                {
                    "include-name-regex": _DESTRUCTIVE,
                    "parameters": spare_parameters,
                    "phases": _DESTRUCTIVE_PHASES,
                },
                {
                    "include-name": _READ_CHECKPOINT,
                    "parameters": {
                        **parameters,
                        "path.thread_id": {"dictionary": "reader_thread_id", "probability": 0.5},
                    },
                },
                *(
                    {
                        "include-name": name,
                        "checks": {
                            "positive_data_acceptance": {"expected-statuses": [*_ACCEPTED, "422"]}
                        },
                    }
                    for name in [*_opaque_or_exclusive(), *_KIND_DEPENDENT, *_TOKEN_DEPENDENT]
                ),
                {
                    "include-path-regex": _USER_ROUTES if admin else _ADMIN_ROUTES,
                    "generation": {"max-examples": 3},
                    "phases": {"coverage": {"enabled": False}},
                },
            ],
        }
    )


def _describe_request(case: Any) -> str:
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    body = case.body if type(case.body).__name__ != "NotSet" else None
    return (
        f"{case.method} {case.formatted_path} query={case.query or {}} headers={headers} "
        f"body={body!r:.300}"
    )


@dataclass
class Run:
    """What one run of the engine did and found."""

    failures: list[Failure] = field(default_factory=list)
    # The checks that ran, and the statuses each operation answered.
    checks: set[str] = field(default_factory=set)
    statuses: dict[str, set[int]] = field(default_factory=dict)
    # Every request's path (its parameters filled in) and the status it was answered.
    answered: list[tuple[str, int]] = field(default_factory=list)


def _is_known(check: str, case: Any, response: Any) -> bool:
    return any(
        known.check == check
        and known.operation == case.operation.label
        and known.matches(case, response)
        for known in KNOWN
    )


def run_schemathesis(app: Starlette, token: str, seeded: Seeded, *, admin: bool) -> Run:
    """The engine over every operation: every failed check (and any error it met), what it
    covered."""
    run = Run()
    for revoke in (False, True):
        _run_engine(app, _config(token, seeded, admin=admin, revoke=revoke), run)
    return run


def _run_engine(app: Starlette, config: SchemathesisConfig, run: Run) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            for case_id, interaction in recorder.interactions.items():
                case = recorder.cases[case_id].value
                if interaction.response is not None:
                    status = interaction.response.status_code
                    run.statuses.setdefault(case.operation.label, set()).add(status)
                    run.answered.append((case.formatted_path, status))
            for case_id, checks in recorder.checks.items():
                case = recorder.cases[case_id].value
                interaction = recorder.interactions.get(case_id)
                response = interaction.response if interaction else None
                for check in checks:
                    run.checks.add(check.name)
                    if check.status != Status.FAILURE or check.failure_info is None:
                        continue
                    if response is not None and _is_known(check.name, case, response):
                        continue
                    failure = check.failure_info.failure
                    run.failures.append(
                        Failure(
                            check=check.name,
                            request=_describe_request(case),
                            response=f"{response.status_code} {response.content[:300]!r}"
                            if response is not None
                            else "(no response)",
                            message=f"{failure.title}: {failure.message[:500]}",
                        )
                    )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            run.failures.append(Failure("engine error", "", "", repr(event)[:2000]))
        elif isinstance(event, events.EngineFinished):
            assert event.stop_reason.name == "COMPLETED", event.stop_reason


def _report(failures: list[Failure]) -> str:
    unique = list(dict.fromkeys(str(f) for f in failures))
    return f"{len(unique)} distinct failures:\n\n" + "\n\n".join(unique[:40])


@pytest.fixture
def seeded(app: Starlette) -> Seeded:
    return _seed(app)


# Every built-in check but max_response_time (no time limit: timed assertions flake).
ALL_CHECKS = {
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
    "missing_required_header",
    "ignored_auth",
    "object_level_authorization",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
}


def _operations(*, admin: bool) -> set[str]:
    """The labels of the documented operations of one kind of token (admin: /v1/users)."""
    return {
        f"{method.upper()} {path}"
        for path, item in build_openapi()["paths"].items()
        for method, operation in item.items()
        if operation["security"] and path.startswith(("/v1/users", "/v1/admin/")) is admin
    }


def _assert_covered(run: Run, *, admin: bool) -> None:
    """Every check ran; every route of this token answered a success (real rows were found),
    and every route of the other token only refused it."""
    assert not run.failures, _report(run.failures)
    assert run.checks >= ALL_CHECKS, ALL_CHECKS - run.checks
    for label in _operations(admin=admin):
        assert any(200 <= s < 300 for s in run.statuses.get(label, ())), (label, run.statuses)
    refused: set[int] = set()
    for label in _operations(admin=not admin):
        statuses = run.statuses.get(label, set())
        assert statuses and not any(200 <= s < 300 for s in statuses), (label, run.statuses)
        refused |= statuses
    assert 403 in refused, run.statuses


def test_schemathesis_with_a_user_token_finds_no_failure(app: Starlette, seeded: Seeded) -> None:
    run = run_schemathesis(app, seeded.caller.token, seeded, admin=False)

    _assert_covered(run, admin=False)
    with TestClient(app) as client:  # the caller's token worked all run long
        assert client.get("/v1/me", headers=seeded.caller.headers).status_code == 200


def test_schemathesis_with_the_admin_token_finds_no_failure(app: Starlette, seeded: Seeded) -> None:
    run = run_schemathesis(app, ADMIN_TOKEN, seeded, admin=True)

    _assert_covered(run, admin=True)


def test_seeded_rows_are_what_the_routes_find(app: Starlette, seeded: Seeded) -> None:
    """The ids drawn as path parameters are real: the caller reads each of them."""
    with TestClient(app) as client:
        headers = seeded.caller.headers
        ids = {
            name: [*seeded.ids[name], *seeded.spares.get(name, [])]
            for name in ("conversation_id", "message_id", "thread_id")
        }
        conversation = seeded.ids["conversation_id"][0]
        urls = [f"/v1/conversations/{c}" for c in ids["conversation_id"]]
        urls += [f"{messages_url(conversation)}/{m}" for m in ids["message_id"]]
        urls += [f"/v1/threads/{t}" for t in ids["thread_id"]]
        urls += [
            f"/v1/threads/{t}/checkpoints/{c}"
            for t in [*seeded.ids["thread_id"], READER]
            for c in seeded.ids["checkpoint_id"]
        ]
        urls += [f"/v1/attachments/{a}" for a in seeded.ids["attachment_id"]]
        urls.append(f"/v1/attachments/{seeded.ids['attachment_id'][0]}/thumbnail")
        urls.append(f"/v1/conversations/{conversation}/attachments")
        urls += [f"/v1/snapshots/{s}" for s in seeded.ids["snapshot_id"]]
        urls += [f"/v1/tasks/{t}" for t in seeded.ids["task_id"]]
        for url in urls:
            assert client.get(url, headers=headers).status_code == 200, url
        files = client.get(f"/v1/conversations/{conversation}/attachments", headers=headers)
        assert {f["id"] for f in files.json()["items"]} == set(seeded.ids["attachment_id"])
        # Another user finds none of them.
        for attachment_id in seeded.ids["attachment_id"]:
            for url in (
                f"/v1/attachments/{attachment_id}",
                f"/v1/attachments/{attachment_id}/thumbnail",
            ):
                assert client.get(url, headers=seeded.other.headers).status_code == 404, url
        tokens = client.get("/v1/tokens", headers=headers).json()["items"]
        assert seeded.spares["token_id"][0] in {t["id"] for t in tokens}


def _everything_of(client: TestClient, caller: Caller) -> Json:
    """All a user has, as they read it."""
    headers = caller.headers

    def get(url: str) -> Any:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, (url, response.text)
        return response.json()

    conversations = get("/v1/conversations?limit=200")["items"]
    threads = get("/v1/threads?limit=200")["items"]
    files = {
        c["id"]: get(f"/v1/conversations/{c['id']}/attachments?limit=200")["items"]
        for c in conversations
    }
    return {
        "me": get("/v1/me"),
        "tokens": get("/v1/tokens"),
        "conversations": conversations,
        "messages": {
            c["id"]: get(f"{messages_url(c['id'])}?limit=200")["items"] for c in conversations
        },
        "files": files,
        "bytes": {
            f["id"]: hashlib.sha256(client.get(f["url"], headers=headers).content).hexdigest()
            for items in files.values()
            for f in items
        },
        "threads": threads,
        "snapshots": [
            get(f"/v1/snapshots/{item['id']}") for item in get("/v1/snapshots?limit=200")["items"]
        ],
        "tasks": get("/v1/tasks?limit=200")["items"],
        "history": {
            t["thread_id"]: get(f"/v1/threads/{quote(t['thread_id'], safe='')}/history?limit=200")[
                "items"
            ]
            for t in threads
        },
    }


def test_schemathesis_with_another_users_token_changes_nothing_of_the_owners(
    app: Starlette, seeded: Seeded
) -> None:
    """Bob's token on Alice's ids (drawn half the time): no failure, and all Alice has is as it
    was (another user's row is 404, never read, changed or deleted)."""
    with TestClient(app) as client:
        before = _everything_of(client, seeded.caller)

    run = run_schemathesis(app, seeded.other.token, seeded, admin=False)

    assert not run.failures, _report(run.failures)
    # Nothing of Alice's was found (a file read leaves her rows as they were: looked for
    # here). Thread ids are names, which Bob's own threads may have too.
    hers = {
        value
        for pool in (seeded.ids, seeded.spares)
        for name, values in pool.items()
        if name not in ("user_id", "thread_id")
        for value in values
    }
    found = [(path, status) for path, status in run.answered if status < 400]
    assert found, "Bob's token found nothing of his own either"
    assert not [(path, status) for path, status in found if any(v in path for v in hers)]
    with TestClient(app) as client:
        assert _everything_of(client, seeded.caller) == before
