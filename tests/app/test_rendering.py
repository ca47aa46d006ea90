"""Golden test of the rendering: every response model the routes declare renders, from records
built from real rows, byte for byte as pydantic's ``model_dump_json`` would."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from pydantic import BaseModel
from starlette.testclient import TestClient

from app import responses
from app.routes import ENDPOINTS
from app.routes.transfer import ConversationExport
from app.schemas import ErrorBody
from tests.app.conftest import ADMIN_TOKEN, auth, make_user, messages_url, text_part

ADMIN = auth(ADMIN_TOKEN)

# JSON that a plain encoder could get wrong: nesting, unicode (escapes and not), 64-bit ints,
# floats short and extreme, nulls.
AWKWARD: dict[str, Any] = {
    "nested": {"a": [1, {"b": None, "c": [[], {}]}], "z": "last", "A": "order kept"},
    "unicode": 'héllo ✓ 😀 \u2028 \x1f "quoted" \\ / \t\n',
    "big": 2**63 - 1,
    "small": -(2**63),
    "tenth": 0.1,
    "huge": 1e300,
    "tiny": 5e-324,
    "minus": -2.5e-7,
    "whole": 3.0,
    "zero": 0,
    "null": None,
    "flags": [True, False],
    "": "empty key",
}


def declared_models() -> set[type[BaseModel]]:
    """The records the routes render. An answer may name ErrorBody (an error with headers of
    its own, a 416's Content-Range): errors are written by app.errors, not from records."""
    models: set[type[BaseModel]] = set()
    for endpoint in ENDPOINTS:
        if endpoint.response is not None:
            models.add(endpoint.response)
        models.update(answer.body for answer in endpoint.answers if answer.body is not None)
    return models - {ErrorBody}


def exercise(client: TestClient) -> None:
    """One request to every route that answers a body, on awkward values."""
    client.get("/health")
    response = client.post(
        "/v1/users",
        json={"username": "zoe", "display_name": "Zoë ✓", "metadata": AWKWARD},
        headers=ADMIN,
    )
    assert response.status_code == 201, response.text
    user_id, token = response.json()["user"]["id"], response.json()["token"]
    me = auth(token)
    plain, _ = make_user(client, "plain")  # no display name: null fields
    for method, path, body, headers in [
        ("GET", f"/v1/users/{user_id}", None, ADMIN),
        ("PATCH", f"/v1/users/{user_id}", {"display_name": "Z"}, ADMIN),
        ("GET", "/v1/me", None, me),
        ("PATCH", "/v1/me", {"metadata": AWKWARD}, me),
        ("POST", "/v1/tokens", {"name": "laptop ✓"}, me),
        ("GET", "/v1/tokens", None, me),
        ("PUT", f"/v1/users/{user_id}/password", {"password": "pässwörd ✓ 😀"}, ADMIN),
    ]:
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code < 300, (path, response.text)
    # Identity: a sign-in (the user with awkward metadata), a refresh.
    signed = client.post("/v1/auth/login", json={"username": "zoe", "password": "pässwörd ✓ 😀"})
    assert signed.status_code == 200, signed.text
    refreshed = client.post(
        "/v1/auth/refresh", json={"refresh_token": signed.json()["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text

    conversation = client.post(
        "/v1/conversations", json={"title": "ünï", "metadata": AWKWARD, "tags": ["a"]}, headers=me
    ).json()
    cid = conversation["id"]
    again = {"id": cid, "title": "ünï", "metadata": AWKWARD, "tags": ["a"]}
    assert client.post("/v1/conversations", json=again, headers=me).status_code == 200
    client.post("/v1/conversations", json={}, headers=me)  # empty metadata, no thread
    parts = [text_part("héllo 😀"), {"type": "data-x", "data": AWKWARD}]
    message = client.post(
        messages_url(cid), json={"role": "user", "parts": parts, "metadata": AWKWARD}, headers=me
    ).json()
    retry = {"id": message["id"], "role": "user", "parts": parts, "metadata": AWKWARD}
    assert client.post(messages_url(cid), json=retry, headers=me).status_code == 200
    for i in range(3):
        body = {"role": "assistant", "parts": [text_part(f"n{i}")], "status": "streaming"}
        client.post(messages_url(cid), json=body, headers=me)
    mid = message["id"]
    feedback = f"{messages_url(cid)}/{mid}/feedback"
    thread = quote("thréad 1", safe="")
    task = client.post(
        "/v1/tasks",
        json={"kind": "research", "title": "ünï ✓", "input": AWKWARD, "conversation_id": cid},
        headers=me,
    ).json()
    for method, path, body in [
        ("GET", "/v1/conversations", None),
        ("GET", "/v1/conversations?limit=1", None),
        ("GET", f"/v1/conversations/{cid}", None),
        ("PATCH", f"/v1/conversations/{cid}", {"title": "t", "metadata": AWKWARD}),
        ("GET", messages_url(cid), None),
        ("GET", messages_url(cid) + "?limit=2", None),
        ("GET", f"{messages_url(cid)}/{mid}", None),
        ("PATCH", f"{messages_url(cid)}/{mid}", {"parts": [*parts, text_part("edited ✓")]}),
        ("GET", f"{messages_url(cid)}/{mid}/versions", None),  # the earlier version: parts
        ("GET", f"{messages_url(cid)}/{mid}/siblings", None),
        ("POST", f"{messages_url(cid)}/{mid}/activate", {"descend": True}),
        ("GET", "/v1/search/messages?q=h%C3%A9llo", None),  # a hit: the message, a snippet
        ("GET", f"/v1/conversations/{cid}/sessions", None),
        ("POST", f"/v1/conversations/{cid}/sessions/end", None),
        ("PATCH", f"{messages_url(cid)}/{mid}", {"metadata": {"x": 1e300}}),
        ("PUT", feedback, {"rating": "up", "score": 5e-324, "comment": AWKWARD["unicode"]}),
        ("PUT", feedback, {"rating": "down", "score": 9.75}),
        ("GET", feedback, None),
        ("GET", f"/v1/conversations/{cid}/feedback", None),
        ("POST", f"/v1/conversations/{cid}/members", {"user_id": plain["id"]}),
        ("PATCH", f"/v1/conversations/{cid}/members/{plain['id']}", {"role": "moderator"}),
        ("GET", f"/v1/conversations/{cid}/members?limit=1", None),
        ("GET", f"/v1/conversations/{cid}/read", None),
        ("POST", f"/v1/conversations/{cid}/delivered", {"seq": 1}),
        ("POST", f"/v1/conversations/{cid}/read", None),
        ("GET", f"/v1/conversations/{cid}/unread", None),
        ("GET", "/v1/me/unread", None),
        ("GET", f"/v1/me/unread/counts?conversation_id={cid}", None),
        ("GET", f"{messages_url(cid)}/{mid}/receipts", None),
        ("GET", f"/v1/conversations/{cid}/deliveries", None),
        ("PUT", f"/v1/threads/{thread}/state", {"values": {"v": AWKWARD}, "metadata": AWKWARD}),
        ("PUT", f"/v1/threads/{thread}/state", {"values": {"n": 2}, "conversation_id": cid}),
        ("GET", "/v1/threads", None),
        ("GET", f"/v1/threads/{thread}", None),
        ("GET", f"/v1/threads/{thread}/state", None),
        ("GET", f"/v1/threads/{thread}/history", None),
        ("POST", f"/v1/threads/{thread}/copy", {"target_thread_id": "copy ✓"}),
        ("POST", f"/v1/threads/{thread}/prune", {"strategy": "keep_latest"}),
        ("PATCH", f"/v1/threads/{thread}", {"metadata": AWKWARD}),
        ("GET", f"/v1/tasks/{task['id']}", None),
        ("GET", f"/v1/tasks?status=pending&conversation_id={cid}", None),
        ("POST", f"/v1/tasks/{task['id']}/cancel", None),
        ("GET", "/v1/tasks?limit=1", None),
        (
            "POST",
            f"/v1/tasks/{task['id']}/events",
            {"events": [{"type": "panel", "payload": AWKWARD}]},
        ),
        ("GET", f"/v1/tasks/{task['id']}/events?after=1", None),
        ("POST", f"/v1/conversations/{cid}/events", {"events": [{"type": "plan"}]}),
        ("GET", f"/v1/conversations/{cid}/events", None),
    ]:
        response = client.request(method, path, json=body, headers=me)
        assert response.status_code < 300, (path, response.text)
    # A workspace snapshot: saved, restored, changed, listed, searched.
    panels = [{"query": "héllo 😀", "v": AWKWARD}, {"kind": "note"}]
    snapshot = client.post(
        "/v1/snapshots",
        json={"name": "ünï ✓", "panels": panels, "conversation_id": cid},
        headers=me,
    ).json()
    for method, path, body in [
        ("GET", f"/v1/snapshots/{snapshot['id']}", None),
        ("PATCH", f"/v1/snapshots/{snapshot['id']}", {"panels": [*panels, {"x": 1e300}]}),
        ("GET", "/v1/snapshots?limit=1", None),
        ("GET", "/v1/snapshots?q=H%C3%A9LLO", None),
        ("GET", f"/v1/snapshots?conversation_id={cid}", None),
    ]:
        response = client.request(method, path, json=body, headers=me)
        assert response.status_code < 300, (path, response.text)
    # A runtime profile: made, changed, activated, listed, copied, resolved (secrets masked).
    draft = {
        "kind": "llm",
        "name": "ünï ✓",
        "settings": {"provider": "openai", "model": "gpt-😀", "temperature": 0.7},
        "secrets": {"api_key": "sk-rendering-0123456789-abcd"},
    }
    profile = client.post("/v1/profiles", json=draft, headers=me).json()
    for method, path, body in [
        ("GET", f"/v1/profiles/{profile['id']}", None),
        ("PATCH", f"/v1/profiles/{profile['id']}", {"name": "ü2"}),
        ("POST", f"/v1/profiles/{profile['id']}/activate", None),
        ("GET", "/v1/profiles?kind=llm", None),
        ("POST", f"/v1/profiles/{profile['id']}/duplicate", None),
        ("GET", "/v1/profiles/llm/effective", None),
    ]:
        response = client.request(method, path, json=body, headers=me)
        assert response.status_code < 300, (path, response.text)
    # Files: an upload (and the same bytes again), a message referencing it, their lists.
    upload = {**me, "Content-Type": "text/plain", "Content-Disposition": "inline; filename=a.txt"}
    for status in (201, 200):
        response = client.post(
            f"/v1/conversations/{cid}/attachments", content="héllo ✓".encode(), headers=upload
        )
        assert response.status_code == status, response.text
    attachment = response.json()
    file_part = {"type": "file", "mediaType": "text/plain", "url": attachment["url"]}
    with_file = client.post(
        messages_url(cid), json={"role": "user", "parts": [file_part]}, headers=me
    ).json()
    for path in (
        f"/v1/conversations/{cid}/attachments",
        f"{messages_url(cid)}/{with_file['id']}/attachments",
    ):
        response = client.get(path, headers=me)
        assert response.status_code == 200 and response.json()["items"], (path, response.text)
    history = client.get(f"/v1/threads/{thread}/history", headers=me).json()
    checkpoint = history[0]["checkpoint_id"] if isinstance(history, list) else None
    if checkpoint is None:
        checkpoint = history["items"][0]["checkpoint_id"]
    response = client.get(f"/v1/threads/{thread}/checkpoints/{checkpoint}", headers=me)
    assert response.status_code == 200, response.text
    # An export is streamed, each record written by dal.usecases.transfer: the same bytes as
    # rendering the document (apart from the newline between messages).
    export = client.get(f"/v1/conversations/{cid}/export", headers=me)
    assert export.status_code == 200, export.text
    document = ConversationExport.model_validate_json(export.content)
    # 4, the one with a file, and the 2 system messages of the member changes
    assert len(document.messages) == 7
    assert export.content.replace(b"\n", b"") == responses.render(document)
    response = client.post(
        "/v1/conversations/import",
        content=export.content,
        headers={**me, "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    # The storage stats (every kind of row there by now), then the user erased.
    for path, method in (("/v1/admin/stats?top=3", "GET"), (f"/v1/users/{user_id}", "DELETE")):
        response = client.request(method, path, headers=ADMIN)
        assert response.status_code == 200, (path, response.text)


def test_every_response_model_renders_as_pydantic_does(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered: list[tuple[BaseModel, bytes]] = []
    render = responses.render

    def spy(record: BaseModel) -> bytes:
        body = render(record)
        rendered.append((record, body))
        return body

    monkeypatch.setattr(responses, "render", spy)
    exercise(client)

    for record, body in rendered:
        assert body == record.model_dump_json().encode(), type(record).__name__
    missing = declared_models() - {type(record) for record, _ in rendered}
    assert not missing, sorted(model.__name__ for model in missing)
    # The awkward values went through, and not by pydantic's fallback.
    assert any(b"1e+300" in body and "😀".encode() in body for _, body in rendered)


def test_the_page_is_rendered_by_orjson_not_the_fallback(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(BaseModel, "model_dump_json", _refuse)
    exercise(client)


def _refuse(self: BaseModel, **_: Any) -> str:
    raise AssertionError(f"{type(self).__name__} fell back to pydantic")
