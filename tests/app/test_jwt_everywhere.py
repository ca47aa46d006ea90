"""Every route a user may call takes an access token (JWT) from ``POST /v1/auth/login`` as it
takes the same user's API token (issue 13, README "Identity").

The walk is over the app's own declarations (``app.routes.ENDPOINTS``, auth="user"), so a new
route is in it without being listed here; a route whose path names a parameter the scene does
not have fails the walk, saying which. The same user has two twin scenes, built alike (a
conversation with messages, feedback, an image, a member; a thread with a checkpoint; a task;
a snapshot; a profile; a spare API token): each route is called once on the JWT's twin and once
on the API token's, in the same order (the deletions last, the deepest first), and must answer
the same status. Most answer a success; the others are in ``NOT_A_SUCCESS`` with the reason,
so a route that starts refusing a JWT cannot hide among them. Each route is called with a
fresh access token (a new login), so a route that ends sessions (a password change) does not
decide the answers of the routes after it.

A garbage, a tampered and an expired JWT get 401 on every one of these routes.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from PIL import Image
from starlette.testclient import TestClient

from app.endpoints import Endpoint
from app.identity import Identity
from app.routes import ENDPOINTS
from dal.settings import Settings
from tests.app.conftest import ADMIN, MISSING_ID, Json, auth, make_user, text_part

PASSWORD = "twin scenes, one user"
USER_ROUTES = [e for e in ENDPOINTS if e.auth == "user"]
# Starlette's "{name:convertor}" in a path.
_PARAM = re.compile(r"\{(\w+):\w+\}")

# (method, path) -> the answer both credentials get when it is not a success, and why.
NOT_A_SUCCESS: dict[tuple[str, str], tuple[int, str]] = {
    ("GET", "/v1/tasks/{task_id:uuid}/events/stream"): (404, "asked for a task that is not there"),
    ("GET", "/v1/conversations/{conversation_id:uuid}/events/stream"): (
        404,
        "asked for a conversation that is not there",
    ),
}

Body = Callable[["Scene"], Any]


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(buffer, "PNG")
    return buffer.getvalue()


# The body of each route that reads one, from the scene's ids (names differ between the twins
# where a name must be unique per user).
BODIES: dict[tuple[str, str], Body] = {
    ("PATCH", "/v1/me"): lambda s: {"metadata": {"twin": s.name}},
    ("POST", "/v1/tokens"): lambda s: {"name": f"{s.name} laptop"},
    ("POST", "/v1/conversations"): lambda s: {"title": s.name},
    ("PATCH", "/v1/conversations/{conversation_id:uuid}"): lambda s: {"title": "renamed"},
    ("POST", "/v1/conversations/{conversation_id:uuid}/messages"): lambda s: {
        "role": "user",
        "parts": [text_part("hello again")],
    },
    ("PATCH", "/v1/conversations/{conversation_id:uuid}/messages/{message_id:uuid}"): lambda s: {
        "metadata": {"edited": True}
    },
    (
        "POST",
        "/v1/conversations/{conversation_id:uuid}/messages/{message_id:uuid}/activate",
    ): lambda s: {"descend": False},
    ("PUT", "/v1/threads/{thread_id:str}/state"): lambda s: {"values": {"n": 2}},
    ("POST", "/v1/threads/{thread_id:str}/copy"): lambda s: {
        "target_thread_id": f"{s.ids['thread_id']}-copy"
    },
    ("POST", "/v1/threads/{thread_id:str}/prune"): lambda s: {"strategy": "keep_latest"},
    ("PATCH", "/v1/threads/{thread_id:str}"): lambda s: {"metadata": {"k": 1}},
    ("POST", "/v1/conversations/import"): lambda s: [
        {"id": s.ids["import_id"], "role": "user", "parts": [text_part("imported")]}
    ],
    (
        "PUT",
        "/v1/conversations/{conversation_id:uuid}/messages/{message_id:uuid}/feedback",
    ): lambda s: {"rating": "up"},
    ("POST", "/v1/conversations/{conversation_id:uuid}/members"): lambda s: {
        "user_id": s.ids["user_id"]
    },
    ("PATCH", "/v1/conversations/{conversation_id:uuid}/members/{user_id:uuid}"): lambda s: {
        "role": "moderator"
    },
    ("POST", "/v1/conversations/{conversation_id:uuid}/read"): lambda s: {"seq": 1},
    ("POST", "/v1/conversations/{conversation_id:uuid}/delivered"): lambda s: {"seq": 1},
    ("POST", "/v1/snapshots"): lambda s: {"name": f"{s.name} snapshot", "panels": []},
    ("PATCH", "/v1/snapshots/{snapshot_id:uuid}"): lambda s: {"panels": [{"kind": "note"}]},
    ("POST", "/v1/tasks"): lambda s: {"kind": "research"},
    ("POST", "/v1/tasks/{task_id:uuid}/events"): lambda s: {"events": [{"type": "panel"}]},
    ("POST", "/v1/conversations/{conversation_id:uuid}/events"): lambda s: {
        "events": [{"type": "plan"}]
    },
    ("POST", "/v1/profiles"): lambda s: _profile(f"{s.name} second"),
    ("PATCH", "/v1/profiles/{profile_id:uuid}"): lambda s: {"name": f"{s.name} renamed"},
    ("POST", "/v1/profiles/{profile_id:uuid}/duplicate"): lambda s: {"name": f"{s.name} copy"},
    # The same password again: what is checked is who the caller is (their current password).
    ("POST", "/v1/auth/password"): lambda s: {
        "current_password": PASSWORD,
        "new_password": PASSWORD,
    },
}
QUERIES: dict[tuple[str, str], str] = {
    ("GET", "/v1/search/messages"): "q=hello",
    ("GET", "/v1/me/unread/counts"): "conversation_id={conversation_id}",
}
# Streams never end by themselves: they are asked for on a log that is not there (404), which
# the route answers after the caller is known.
STREAMS = {
    "/v1/tasks/{task_id:uuid}/events/stream",
    "/v1/conversations/{conversation_id:uuid}/events/stream",
}


def _profile(name: str) -> Json:
    return {
        "kind": "llm",
        "name": name,
        "settings": {"provider": "openai", "model": "gpt-twin", "temperature": 0.5},
        "secrets": {"api_key": "sk-twin-scene-0123456789"},
    }


@dataclass
class Scene:
    """One twin: its name and the ids of its rows, by path parameter name."""

    name: str
    ids: dict[str, str]


def build_scene(client: TestClient, headers: dict[str, str], name: str, other: str) -> Scene:
    """A twin's rows, made with ``headers`` (the API token: how they are made is not the
    question); ``other`` is the user who becomes a member."""

    def post(path: str, body: Any = None, **extra: Any) -> Json:
        response = client.post(path, json=body, headers={**headers, **extra})
        assert response.status_code in (200, 201), (path, response.text)
        created: Json = response.json()
        return created

    conversation = post("/v1/conversations", {"title": name})["id"]
    messages = f"/v1/conversations/{conversation}/messages"
    post(messages, {"role": "user", "parts": [text_part("hello")]})
    # The message of the routes: an assistant's (feedback is on those only).
    reply = post(messages, {"role": "assistant", "parts": [text_part("hello to you")]})["id"]
    upload = client.post(
        f"/v1/conversations/{conversation}/attachments",
        content=_png(),
        headers={**headers, "Content-Type": "image/png"},
    )
    assert upload.status_code in (200, 201), upload.text  # 200: the same bytes again
    thread = f"{name}-thread"
    state = client.put(f"/v1/threads/{thread}/state", json={"values": {"n": 1}}, headers=headers)
    assert state.status_code in (200, 201), state.text
    checkpoint = client.get(f"/v1/threads/{thread}/state", headers=headers).json()
    profile = post("/v1/profiles", _profile(name))["id"]
    token = post("/v1/tokens", {"name": f"{name} spare"})["id"]
    ids = {
        "conversation_id": conversation,
        "message_id": reply,
        "attachment_id": upload.json()["id"],
        "thread_id": thread,
        "checkpoint_id": checkpoint["checkpoint_id"],
        "task_id": post("/v1/tasks", {"kind": "research", "conversation_id": conversation})["id"],
        "snapshot_id": post("/v1/snapshots", {"name": name, "panels": []})["id"],
        "profile_id": profile,
        "token_id": token,
        "user_id": other,
        "kind": "llm",
        "import_id": "00000000-0000-7000-8000-" + ("0" * 11 + ("1" if name == "jwt" else "2")),
    }
    return Scene(name, ids)


def walk_order(endpoints: list[Endpoint]) -> list[Endpoint]:
    """The app's order, the deletions (and a message's retraction) last, the deepest path
    first among them: a message's feedback before the message, the message before its
    conversation."""

    def key(e: Endpoint) -> tuple[bool, int]:
        ends = e.method == "DELETE" or e.path.endswith("/retract")
        return ends, -e.path.count("/") if ends else 0

    return sorted(endpoints, key=key)


def concrete(endpoint: Endpoint, scene: Scene) -> str:
    """The endpoint's path (and query) for the scene's rows."""
    ids = dict.fromkeys(scene.ids, MISSING_ID) if endpoint.path in STREAMS else scene.ids

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in ids, f"{endpoint.method} {endpoint.path}: add {name!r} to build_scene"
        return ids[name]

    path = _PARAM.sub(value, endpoint.path)
    query = QUERIES.get((endpoint.method, endpoint.path))
    return f"{path}?{query.format(**ids)}" if query else path


def call(client: TestClient, endpoint: Endpoint, scene: Scene, headers: dict[str, str]) -> int:
    path = concrete(endpoint, scene)
    body = BODIES.get((endpoint.method, endpoint.path))
    if endpoint.uploads:
        response = client.request(
            endpoint.method,
            path,
            content=_png(),
            headers={**headers, "Content-Type": "image/png"},
        )
    else:
        json_body = body(scene) if body is not None else None
        response = client.request(endpoint.method, path, json=json_body, headers=headers)
    return response.status_code


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Cheap Argon2: a login per route.
    cheap = {"app_argon2_time_cost": 1, "app_argon2_memory_kib": 64, "app_argon2_parallelism": 1}
    return settings.model_copy(update=cheap)


def login(client: TestClient, username: str) -> str:
    response = client.post("/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    access: str = response.json()["access_token"]
    return access


def make_password_user(client: TestClient, username: str) -> tuple[Json, str]:
    """A user with PASSWORD as their password, and their API token."""
    user, token = make_user(client, username)
    response = client.put(
        f"/v1/users/{user['id']}/password", json={"password": PASSWORD}, headers=ADMIN
    )
    assert response.status_code == 204, response.text
    return user, token


def test_every_user_route_answers_a_jwt_as_the_api_token(client: TestClient) -> None:
    _, token = make_password_user(client, "twin")
    other, _ = make_user(client, "other")
    scenes = {
        name: build_scene(client, auth(token), name, other["id"]) for name in ("jwt", "token")
    }
    answers: list[tuple[str, int, int]] = []
    for endpoint in walk_order(USER_ROUTES):
        by_jwt = call(client, endpoint, scenes["jwt"], auth(login(client, "twin")))
        by_token = call(client, endpoint, scenes["token"], auth(token))
        answers.append((f"{endpoint.method} {endpoint.path}", by_jwt, by_token))
    different = [a for a in answers if a[1] != a[2]]
    assert not different, f"(route, JWT, API token): {different}"
    unexpected = [
        (route, status)
        for route, status, _ in answers
        if not 200 <= status < 300
        and NOT_A_SUCCESS.get(tuple(route.split(" ", 1)), (None,))[0] != status  # type: ignore[arg-type]
    ]
    assert not unexpected, f"answers that are not a success: {unexpected}"
    assert len(answers) == len(USER_ROUTES)


def identity(client: TestClient) -> Identity:
    state: Any = client.app_state  # the lifespan's state, as the routes see it
    found: Identity = state["identity"]
    return found


def _tampered(jwt: str) -> str:
    """The same token with its claims changed (another subject), the signature kept."""
    head, claims, signature = jwt.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    decoded["sub"] = MISSING_ID
    forged = base64.urlsafe_b64encode(json.dumps(decoded).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{signature}"


def test_a_bad_jwt_is_401_on_every_user_route(client: TestClient, settings: Settings) -> None:
    make_password_user(client, "twin")
    jwt = login(client, "twin")
    scene = Scene("none", dict.fromkeys(("kind",), "llm"))
    scene.ids.update(
        (name, MISSING_ID) for e in USER_ROUTES for name in _PARAM.findall(e.path) if name != "kind"
    )
    scene.ids["import_id"] = MISSING_ID
    bad = {
        "garbage": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.not-a-signature",
        "tampered": _tampered(jwt),
    }
    assert client.get("/v1/me", headers=auth(jwt)).status_code == 200
    for name, value in bad.items():
        for endpoint in USER_ROUTES:
            status = call(client, endpoint, scene, auth(value))
            assert status == 401, (name, endpoint.method, endpoint.path, status)
    # Expired: the app's clock moved past the token's expiry (APP_ACCESS_TOKEN_SECONDS).
    identity(client).clock.advance(settings.app_access_token_seconds + 1)
    for endpoint in USER_ROUTES:
        status = call(client, endpoint, scene, auth(jwt))
        assert status == 401, ("expired", endpoint.method, endpoint.path, status)
