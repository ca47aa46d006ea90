"""Who may do what in a shared conversation, over HTTP: every route that reads or changes a
conversation, tried by each kind of caller (owner, admin, moderator, member, former member,
someone who never was one). Each cell runs on a conversation of its own; a refused request
(403, 404) must leave the conversation exactly as it was (README "Members and roles")."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from PIL import Image
from starlette.testclient import TestClient

from dal.settings import Settings
from tests.app.conftest import (
    ADMIN_TOKEN,
    Caller,
    Json,
    auth,
    make_conversation,
    make_user,
    messages_url,
    text_part,
)

ROLES = ("owner", "admin", "moderator", "member", "former", "stranger")


@dataclass
class Scene:
    """A conversation with one caller of each kind, and a message of the owner's (with a file,
    an image of the owner's) and of each member's own."""

    client: TestClient
    db: psycopg.Connection[Any]
    callers: dict[str, Caller]
    conversation_id: str
    owners_message: str
    own_message: dict[str, str]
    attachment_id: str = ""

    def url(self, tail: str = "") -> str:
        return f"/v1/conversations/{self.conversation_id}{tail}"

    def state(self) -> tuple[Any, ...]:
        """Everything a refused request must leave alone."""
        conversation = self.db.execute(
            "SELECT to_jsonb(c) - 'updated_at' FROM conversations c WHERE id = %s",
            [self.conversation_id],
        ).fetchone()
        members = self.db.execute(
            "SELECT user_id, role, last_read_seq, delivered_seq FROM conversation_members"
            " WHERE conversation_id = %s ORDER BY user_id",
            [self.conversation_id],
        ).fetchall()
        rows = self.db.execute(
            "SELECT to_jsonb(m) - 'search_vector' FROM messages m WHERE conversation_id = %s"
            " ORDER BY seq",
            [self.conversation_id],
        ).fetchall()
        return conversation, members, rows


@dataclass(frozen=True)
class Action:
    name: str
    call: Callable[[Scene, Caller, str], Any]
    # The answer for each kind of caller: a status code.
    expect: dict[str, int]


def _members(rank: int, ok: int, others: int = 403) -> dict[str, int]:
    """``ok`` for the roles of at least ``rank`` (owner 4 ... member 1), ``others`` for the
    members below it, 404 for the former member and the stranger."""
    ranks = {"owner": 4, "admin": 3, "moderator": 2, "member": 1}
    expect = {role: ok if r >= rank else others for role, r in ranks.items()}
    return {**expect, "former": 404, "stranger": 404}


def _append(scene: Scene, who: Caller, role: str) -> Any:
    body: Json = {"role": "user", "parts": [text_part(f"from {role}")]}
    if role == "owner" and scene.attachment_id:
        url = f"/v1/attachments/{scene.attachment_id}"
        body["parts"].append({"type": "file", "mediaType": "image/png", "url": url})
    return scene.client.post(messages_url(scene.conversation_id), json=body, headers=who.headers)


def _upload(scene: Scene, who: Caller, data: bytes) -> Any:
    return scene.client.post(
        scene.url("/attachments"),
        content=data,
        headers={**who.headers, "Content-Type": "image/png"},
    )


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(buffer, "PNG")
    return buffer.getvalue()


def _own_message(scene: Scene, role: str) -> str:
    return scene.own_message.get(role, scene.owners_message)


ACTIONS: list[Action] = [
    Action(
        "read the conversation",
        lambda s, who, _: s.client.get(s.url(), headers=who.headers),
        _members(1, 200),
    ),
    Action(
        "page its messages",
        lambda s, who, _: s.client.get(s.url("/messages"), headers=who.headers),
        _members(1, 200),
    ),
    Action(
        "read a message",
        lambda s, who, _: s.client.get(s.url(f"/messages/{s.owners_message}"), headers=who.headers),
        _members(1, 200),
    ),
    Action(
        "export it",
        lambda s, who, _: s.client.get(s.url("/export"), headers=who.headers),
        _members(1, 200),
    ),
    Action("append a message", _append, _members(1, 201)),
    Action(
        "rename it",
        lambda s, who, _: s.client.patch(s.url(), json={"title": "renamed"}, headers=who.headers),
        _members(3, 200),
    ),
    Action(
        "set its tool-call integrity",
        lambda s, who, _: s.client.patch(
            s.url(), json={"tool_integrity": "reject"}, headers=who.headers
        ),
        _members(3, 200),
    ),
    Action(
        "delete it",
        lambda s, who, _: s.client.delete(s.url(), headers=who.headers),
        _members(4, 204),
    ),
    Action(
        "delete the owner's message",
        lambda s, who, _: s.client.delete(
            s.url(f"/messages/{s.owners_message}"), headers=who.headers
        ),
        _members(2, 204),
    ),
    Action(
        "change the metadata of one's own message",
        lambda s, who, role: s.client.patch(
            s.url(f"/messages/{_own_message(s, role)}"),
            json={"metadata": {"by": role}},
            headers=who.headers,
        ),
        _members(1, 200),
    ),
    Action(
        "change the metadata of another's message",
        lambda s, who, role: s.client.patch(
            s.url(f"/messages/{s.own_message['member' if role != 'member' else 'admin']}"),
            json={"metadata": {"by": role}},
            headers=who.headers,
        ),
        {**_members(1, 403), "former": 404, "stranger": 404},
    ),
    Action(
        "list a message's siblings",
        lambda s, who, _: s.client.get(
            s.url(f"/messages/{s.owners_message}/siblings"), headers=who.headers
        ),
        _members(1, 200),
    ),
    Action(
        "read a branch by its leaf",
        lambda s, who, _: s.client.get(
            s.url(f"/branches/{s.owners_message}/messages"), headers=who.headers
        ),
        _members(1, 200),
    ),
    Action(
        "make a message the active leaf",
        lambda s, who, _: s.client.post(
            s.url(f"/messages/{s.owners_message}/activate"),
            json={"descend": False},
            headers=who.headers,
        ),
        _members(1, 200),
    ),
    Action(
        "start a branch (parent_id)",
        lambda s, who, role: s.client.post(
            s.url("/messages"),
            json={"role": "user", "parts": [text_part(role)], "parent_id": s.owners_message},
            headers=who.headers,
        ),
        _members(1, 201),
    ),
    Action(
        "list a message's versions",
        lambda s, who, _: s.client.get(
            s.url(f"/messages/{s.owners_message}/versions"), headers=who.headers
        ),
        _members(1, 200),
    ),
    Action(
        "edit one's own message",
        lambda s, who, role: s.client.patch(
            s.url(f"/messages/{_own_message(s, role)}"),
            json={"parts": [text_part("edited")]},
            headers=who.headers,
        ),
        _members(1, 200),
    ),
    Action(
        "retract one's own message",
        lambda s, who, role: s.client.post(
            s.url(f"/messages/{_own_message(s, role)}/retract"), headers=who.headers
        ),
        _members(1, 200),
    ),
    Action(
        "retract another's message",
        lambda s, who, role: s.client.post(
            s.url(f"/messages/{s.own_message['member' if role != 'member' else 'admin']}/retract"),
            headers=who.headers,
        ),
        {**_members(1, 403), "former": 404, "stranger": 404},
    ),
    Action(
        "rate a message",
        lambda s, who, _: s.client.put(
            s.url(f"/messages/{s.owners_message}/feedback"),
            json={"rating": "up"},
            headers=who.headers,
        ),
        _members(1, 201),
    ),
    Action(
        "list the conversation's feedback",
        lambda s, who, _: s.client.get(s.url("/feedback"), headers=who.headers),
        _members(1, 200),
    ),
    Action(
        "list its chat sessions",
        lambda s, who, _: s.client.get(s.url("/sessions"), headers=who.headers),
        _members(1, 200),
    ),
    Action(
        "end its chat session",
        lambda s, who, _: s.client.post(s.url("/sessions/end"), headers=who.headers),
        _members(2, 200),
    ),
    Action(
        "list its flagged messages",
        lambda s, who, _: s.client.get(s.url("/messages/flagged"), headers=who.headers),
        _members(1, 200),
    ),
    Action(
        "mark it read",
        lambda s, who, _: s.client.post(s.url("/read"), json={}, headers=who.headers),
        _members(1, 200),
    ),
    Action(
        "mark it delivered",
        lambda s, who, _: s.client.post(s.url("/delivered"), json={"seq": 1}, headers=who.headers),
        _members(1, 200),
    ),
    Action(
        "read one's read position and unread count",
        lambda s, who, _: s.client.get(s.url("/read"), headers=who.headers),
        _members(1, 200),
    ),
    Action(
        "list one's unread messages",
        lambda s, who, _: s.client.get(s.url("/unread"), headers=who.headers),
        _members(1, 200),
    ),
    Action(
        "read a message's receipts",
        lambda s, who, _: s.client.get(
            s.url(f"/messages/{s.owners_message}/receipts"), headers=who.headers
        ),
        _members(1, 200),
    ),
    Action(
        "read the delivery status of a page",
        lambda s, who, _: s.client.get(s.url("/deliveries"), headers=who.headers),
        _members(1, 200),
    ),
    Action(
        "list its members",
        lambda s, who, _: s.client.get(s.url("/members"), headers=who.headers),
        _members(1, 200),
    ),
    Action(
        "upload a file into it",
        lambda s, who, role: _upload(s, who, f"from {role}".encode()),
        _members(1, 201),
    ),
    Action(
        "list the files its messages reference",
        lambda s, who, _: s.client.get(s.url("/attachments"), headers=who.headers),
        _members(1, 200),
    ),
    Action(
        "list the files of a message",
        lambda s, who, _: s.client.get(
            s.url(f"/messages/{s.owners_message}/attachments"), headers=who.headers
        ),
        _members(1, 200),
    ),
    Action(
        "download a file a message references",
        lambda s, who, _: s.client.get(f"/v1/attachments/{s.attachment_id}", headers=who.headers),
        _members(1, 200),
    ),
    Action(
        "get the thumbnail of a file a message references",
        lambda s, who, _: s.client.get(
            f"/v1/attachments/{s.attachment_id}/thumbnail", headers=who.headers
        ),
        _members(1, 200),
    ),
]


@pytest.fixture
def db(settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Cheap password hashes: the JWT callers sign in (README "Identity").
    cheap = {"app_argon2_time_cost": 1, "app_argon2_memory_kib": 64, "app_argon2_parallelism": 1}
    return settings.model_copy(update=cheap)


def _signed_in(client: TestClient, user: Json) -> Caller:
    """The user with an access token (a JWT) of a password sign-in instead of an API token."""
    password = {"password": "role matrix password"}
    url = f"/v1/users/{user['id']}/password"
    assert client.put(url, json=password, headers=auth(ADMIN_TOKEN)).status_code == 204
    signed = client.post("/v1/auth/login", json={"username": user["username"], **password})
    assert signed.status_code == 200, signed.text
    return Caller(user, signed.json()["access_token"])


# Every cell runs with each kind of credential a user may hold: an API token, and an access
# token of a password sign-in: the routes take both alike.
@pytest.fixture(params=["api_token", "jwt"])
def people(client: TestClient, request: pytest.FixtureRequest) -> dict[str, Caller]:
    made = {role: Caller(*make_user(client, role)) for role in ROLES}
    if request.param == "jwt":
        return {role: _signed_in(client, caller.user) for role, caller in made.items()}
    return made


def _scene(client: TestClient, db: psycopg.Connection[Any], people: dict[str, Caller]) -> Scene:
    owner = people["owner"]
    conversation: Json = make_conversation(client, owner, title="team")
    conversation_id = conversation["id"]
    for role in ("admin", "moderator", "member", "former"):
        db.execute(
            "INSERT INTO conversation_members (conversation_id, user_id, role) VALUES (%s, %s, %s)",
            [conversation_id, people[role].id, "member" if role == "former" else role],
        )
    scene = Scene(client, db, people, conversation_id, "", {})
    uploaded = _upload(scene, owner, _png())
    assert uploaded.status_code in (200, 201), uploaded.text  # 200: the owner's, uploaded before
    scene.attachment_id = uploaded.json()["id"]
    own: dict[str, str] = {}
    for role in ("owner", "admin", "moderator", "member", "former"):
        response = _append(scene, people[role], role)
        assert response.status_code == 201, response.text
        own[role] = response.json()["id"]
    # The former member leaves; their message stays.
    db.execute(
        "DELETE FROM conversation_members WHERE conversation_id = %s AND user_id = %s",
        [conversation_id, people["former"].id],
    )
    db.execute("UPDATE conversations SET member_count = 4 WHERE id = %s", [conversation_id])
    scene.owners_message = own.pop("owner")
    own.pop("former")
    scene.own_message = own
    scene.own_message["owner"] = scene.owners_message
    return scene


@pytest.mark.parametrize("action", ACTIONS, ids=[a.name for a in ACTIONS])
def test_each_role_may_do_what_the_table_says_and_a_refusal_changes_nothing(
    client: TestClient, db: psycopg.Connection[Any], people: dict[str, Caller], action: Action
) -> None:
    for role in ROLES:
        scene = _scene(client, db, people)
        before = scene.state()
        response = action.call(scene, people[role], role)
        expected = action.expect[role]
        assert response.status_code == expected, (action.name, role, response.text)
        if expected >= 400:
            code = response.json()["error"]["code"]
            assert code == {403: "forbidden", 404: "not_found"}[expected], (action.name, role)
            assert scene.state() == before, (action.name, role)
