"""GET /openapi.json: an OpenAPI 3.1 document that matches the app's routes and responses.

The document is a function of the settings alone: it is built and served without a database
(no lifespan runs); only the tests that compare it with real responses use one.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from app import create_app
from app.endpoints import Endpoint, Endpoints, PathParam, routes_of
from app.responses import no_content
from dal.settings import Settings
from tests.app.conftest import (
    ADMIN,
    ADMIN_TOKEN,
    Caller,
    Json,
    TestClient,
    append,
    assert_error,
    make_conversation,
)

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


# Settings of an app that never connects: the document does not depend on the database.
_NO_DATABASE = "postgresql://nobody@127.0.0.1:1/none"


def _settings(**changes: Any) -> Settings:
    return Settings(database_url=_NO_DATABASE, app_admin_token=ADMIN_TOKEN, **changes)


@pytest.fixture(scope="module")
def app() -> Starlette:
    return create_app(_settings())


@pytest.fixture(scope="module")
def doc_client(app: Starlette) -> TestClient:
    """The client of the very app whose routes are walked; no lifespan, so no pool."""
    return TestClient(app)


@pytest.fixture(scope="module")
def doc(doc_client: TestClient) -> Json:
    response = doc_client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document: Json = response.json()
    return document


def _app_operations(app: Starlette) -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every route of the app, /openapi.json aside."""
    operations: set[tuple[str, str]] = set()
    for route in app.routes:
        assert isinstance(route, Route), route
        if route.path == "/openapi.json":
            continue
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)  # "{id:uuid}" -> "{id}"
        for method in route.methods or ():
            if method != "HEAD":
                operations.add((path, method.lower()))
    return operations


def _doc_operations(doc: Json) -> Iterator[tuple[str, str, Json]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            assert method in METHODS, (path, method)
            yield path, method, operation


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                assert isinstance(value, str)
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _schema_of(doc: Json, name: str) -> Json:
    schema: Json = doc["components"]["schemas"][name]
    return schema


def _assert_matches(doc: Json, name: str, body: Json) -> None:
    """The body has every required property of the schema and no property it lacks."""
    schema = _schema_of(doc, name)
    assert set(schema["required"]) <= set(body), (name, body)
    assert set(body) <= set(schema["properties"]), (name, body)


def test_openapi_needs_no_token_and_is_3_1(doc: Json) -> None:
    assert doc["openapi"].startswith("3.1.")
    assert doc["info"]["title"] == "Mnemo"
    assert isinstance(doc["info"]["version"], str) and doc["info"]["version"]
    assert doc["paths"]
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}


def test_openapi_is_the_same_on_every_request(doc_client: TestClient, doc: Json) -> None:
    assert doc_client.get("/openapi.json", headers=ADMIN).json() == doc


def test_openapi_documents_exactly_the_routes_of_the_app(app: Starlette, doc: Json) -> None:
    documented = {(path, method) for path, method, _ in _doc_operations(doc)}

    assert documented == _app_operations(app)


def test_openapi_every_ref_resolves_to_a_component_schema(doc: Json) -> None:
    refs = set(_refs(doc))

    assert refs
    prefix = "#/components/schemas/"
    for ref in refs:
        assert ref.startswith(prefix), ref
        assert ref[len(prefix) :] in doc["components"]["schemas"], ref


# The routes that need no token (a logout may send one, or a refresh token instead).
SIGN_IN = {"/v1/auth/login", "/v1/auth/refresh", "/v1/auth/logout", "/v1/auth/signup"}


def test_openapi_operations_are_complete(doc: Json) -> None:
    schemes = set(doc["components"]["securitySchemes"])
    for path, method, operation in _doc_operations(doc):
        where = f"{method.upper()} {path}"
        assert operation["summary"], where
        in_path = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
        assert in_path == set(re.findall(r"\{(\w+)\}", path)), where
        for parameter in operation["parameters"]:
            assert parameter["in"] in {"path", "query", "header"}, where
            assert parameter.get("required", False) is (parameter["in"] == "path"), where
        statuses = set(operation["responses"])
        assert any(s.startswith("2") for s in statuses), where
        for status, response in operation["responses"].items():
            assert re.fullmatch(r"[1-5]\d\d", status), where
            assert response["description"], where
        for requirement in operation["security"]:
            assert set(requirement) <= schemes, where
        if path == "/health":
            assert operation["security"] == []
        elif path in SIGN_IN:  # no token needed: they give tokens (README "Identity")
            assert operation["security"] == [], where
            assert "401" in statuses or path == "/v1/auth/signup", where
        else:
            assert operation["security"] == [{"bearer": []}], where
            assert "401" in statuses, where
        if method in {"post", "patch"} and "requestBody" in operation:
            assert {"400", "413", "415", "422"} <= statuses, where


def test_openapi_documents_request_bodies_of_write_routes(doc: Json) -> None:
    bodies = {
        ("/v1/users", "post"): ("UserDraft", True),
        ("/v1/users/{user_id}", "patch"): ("UserPatch", True),
        ("/v1/me", "patch"): ("UserPatch", True),
        ("/v1/tokens", "post"): ("TokenDraft", False),
        ("/v1/conversations", "post"): ("ConversationDraft", False),
        ("/v1/conversations/{conversation_id}", "patch"): ("ConversationPatch", True),
        ("/v1/conversations/import", "post"): ("ImportBody", True),
        ("/v1/conversations/{conversation_id}/messages", "post"): ("MessageDraft", True),
        (
            "/v1/conversations/{conversation_id}/messages/{message_id}",
            "patch",
        ): ("MessagePatch", True),
        ("/v1/conversations/{conversation_id}/messages/{message_id}/activate", "post"): (
            "Activation",
            False,
        ),
        ("/v1/threads/{thread_id}/state", "put"): ("ThreadStateDraft", True),
        ("/v1/threads/{thread_id}/copy", "post"): ("ThreadCopy", True),
        ("/v1/threads/{thread_id}/prune", "post"): ("ThreadPrune", True),
        ("/v1/threads/{thread_id}", "patch"): ("ThreadPatch", True),
        (
            "/v1/conversations/{conversation_id}/messages/{message_id}/feedback",
            "put",
        ): ("FeedbackDraft", True),
        ("/v1/conversations/{conversation_id}/members", "post"): ("MemberDraft", True),
        ("/v1/conversations/{conversation_id}/members/{user_id}", "patch"): ("MemberPatch", True),
        ("/v1/conversations/{conversation_id}/read", "post"): ("ReadMark", False),
        ("/v1/conversations/{conversation_id}/delivered", "post"): ("ReadMark", False),
        ("/v1/snapshots", "post"): ("SnapshotDraft", True),
        ("/v1/snapshots/{snapshot_id}", "patch"): ("SnapshotPatch", True),
        ("/v1/tasks", "post"): ("TaskDraft", True),
        ("/v1/tasks/{task_id}/events", "post"): ("EventBatch", True),
        ("/v1/conversations/{conversation_id}/events", "post"): ("EventBatch", True),
        ("/v1/profiles", "post"): ("ProfileDraft", True),
        ("/v1/profiles/{profile_id}", "patch"): ("ProfilePatch", True),
        ("/v1/profiles/{profile_id}/duplicate", "post"): ("ProfileCopy", False),
        ("/v1/admin/profiles", "post"): ("ProfileDraft", True),
        ("/v1/admin/profiles/{system_profile_id}", "patch"): ("ProfilePatch", True),
        ("/v1/admin/profiles/{system_profile_id}/duplicate", "post"): ("ProfileCopy", False),
        ("/v1/auth/login", "post"): ("Login", True),
        ("/v1/auth/refresh", "post"): ("RefreshRequest", True),
        ("/v1/auth/logout", "post"): ("LogoutRequest", False),
        ("/v1/auth/signup", "post"): ("Signup", True),
        ("/v1/auth/password", "post"): ("PasswordChange", True),
        ("/v1/users/{user_id}/password", "put"): ("PasswordSet", True),
    }
    for (path, method), (schema, required) in bodies.items():
        body = doc["paths"][path][method]["requestBody"]
        assert body["required"] is required, (path, method)
        ref = body["content"]["application/json"]["schema"]["$ref"]
        assert ref == f"#/components/schemas/{schema}"
    # Files: the file itself (of any type) or a form with the field `file`, not JSON.
    uploads = {("/v1/conversations/{conversation_id}/attachments", "post")}
    for path, method in uploads:
        body = doc["paths"][path][method]["requestBody"]
        assert body["required"] is True
        assert set(body["content"]) == {"application/octet-stream", "multipart/form-data"}
        form = body["content"]["multipart/form-data"]["schema"]
        assert form["required"] == ["file"] and form["properties"]["file"]["format"] == "binary"
    with_body = {(path, method) for path, method, op in _doc_operations(doc) if "requestBody" in op}
    assert with_body == set(bodies) | uploads


def test_openapi_documents_the_statuses_routes_really_return(doc: Json) -> None:
    paths = doc["paths"]
    conversation = paths["/v1/conversations/{conversation_id}"]
    assert {"200", "404", "412", "400"} <= set(conversation["patch"]["responses"])
    assert "If-Match" in {p["name"] for p in conversation["patch"]["parameters"]}
    assert "409" in paths["/v1/conversations"]["post"]["responses"]
    append_responses = paths["/v1/conversations/{conversation_id}/messages"]["post"]["responses"]
    # 201 when stored now, 200 for a retried id: both the message.
    for status in ("200", "201"):
        schema = append_responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Message"}
    message = paths["/v1/conversations/{conversation_id}/messages/{message_id}"]
    assert "409" in message["patch"]["responses"]
    assert "204" in message["delete"]["responses"]
    assert "403" in paths["/v1/users"]["post"]["responses"]
    assert "403" in paths["/v1/me"]["get"]["responses"]
    assert "409" in paths["/v1/users"]["post"]["responses"]
    queries = {
        p["name"]
        for p in paths["/v1/conversations/{conversation_id}/messages"]["get"]["parameters"]
        if p["in"] == "query"
    }
    assert queries == {"limit", "before", "after"}


def test_openapi_documents_the_file_routes(doc: Json) -> None:
    paths = doc["paths"]
    upload = paths["/v1/conversations/{conversation_id}/attachments"]["post"]["responses"]
    for status in ("200", "201"):
        schema = upload[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Attachment"}
    assert "Location" in upload["201"]["headers"]
    assert {"400", "403", "404", "408", "413", "415", "422"} <= set(upload)
    assert "quota_exceeded" in upload["413"]["description"]
    download = paths["/v1/attachments/{attachment_id}"]["get"]
    responses = download["responses"]
    assert {"200", "206", "304", "404", "416"} <= set(responses)
    assert responses["200"]["content"] == {"*/*": {}}
    for status in ("200", "206"):
        assert {"ETag", "Content-Disposition", "X-Content-Type-Options", "Accept-Ranges"} <= set(
            responses[status]["headers"]
        )
    assert "content" not in responses["304"] and "ETag" in responses["304"]["headers"]
    assert "Content-Range" in responses["416"]["headers"]
    assert responses["416"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    headers = {p["name"] for p in download["parameters"] if p["in"] == "header"}
    assert headers == {"Range", "If-Range", "If-None-Match"}
    thumbnail = paths["/v1/attachments/{attachment_id}/thumbnail"]["get"]
    assert {"200", "304", "404", "422"} <= set(thumbnail["responses"])
    assert thumbnail["responses"]["200"]["content"] == {"image/webp": {}}
    assert {p["name"] for p in thumbnail["parameters"] if p["in"] == "header"} == {"If-None-Match"}
    of_message = "/v1/conversations/{conversation_id}/messages/{message_id}/attachments"
    assert paths[of_message]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ] == {"$ref": "#/components/schemas/MessageAttachments"}


def test_openapi_documents_the_event_streams(doc: Json) -> None:
    for path in (
        "/v1/tasks/{task_id}/events/stream",
        "/v1/conversations/{conversation_id}/events/stream",
    ):
        operation = doc["paths"][path]["get"]
        responses = operation["responses"]
        assert responses["200"]["content"] == {"text/event-stream": {}}, path
        assert "Cache-Control" in responses["200"]["headers"], path
        assert {"400", "401", "404", "422", "503"} <= set(responses), path
        assert "Retry-After" in responses["503"]["headers"], path
        params = {(p["in"], p["name"]) for p in operation["parameters"]}
        assert {("query", "after"), ("header", "Last-Event-ID")} <= params, path


def test_openapi_response_schemas_match_real_responses(
    client: TestClient, doc: Json, alice: Caller
) -> None:
    created = client.post("/v1/users", json={"username": "bob"}, headers=ADMIN).json()
    _assert_matches(doc, "UserCreated", created)
    _assert_matches(doc, "User", created["user"])
    _assert_matches(doc, "User", client.get("/v1/me", headers=alice.headers).json())
    token = client.post("/v1/tokens", json={"name": "t"}, headers=alice.headers).json()
    _assert_matches(doc, "TokenCreated", token)
    conversation = make_conversation(client, alice)
    _assert_matches(doc, "Conversation", conversation)
    page = client.get("/v1/conversations", headers=alice.headers).json()
    _assert_matches(doc, "ConversationPage", page)
    message = append(client, alice, conversation["id"])
    _assert_matches(doc, "Message", message)
    messages = client.get(
        f"/v1/conversations/{conversation['id']}/messages", headers=alice.headers
    ).json()
    _assert_matches(doc, "MessagePage", messages)
    _assert_matches(doc, "Health", client.get("/health").json())
    attachment = client.post(
        f"/v1/conversations/{conversation['id']}/attachments",
        content=b"notes",
        headers={**alice.headers, "Content-Type": "text/plain"},
    ).json()
    _assert_matches(doc, "Attachment", attachment)
    parts = [{"type": "file", "mediaType": "text/plain", "url": attachment["url"]}]
    sent = append(client, alice, conversation["id"], parts=parts)
    files = client.get(
        f"/v1/conversations/{conversation['id']}/attachments", headers=alice.headers
    ).json()
    _assert_matches(doc, "MessageAttachmentPage", files)
    _assert_matches(doc, "MessageAttachment", files["items"][0])
    of_message = client.get(
        f"/v1/conversations/{conversation['id']}/messages/{sent['id']}/attachments",
        headers=alice.headers,
    ).json()
    _assert_matches(doc, "MessageAttachments", of_message)

    _assert_matches(doc, "Stats", client.get("/v1/admin/stats", headers=ADMIN).json())
    _assert_matches(
        doc,
        "ErasureReport",
        client.delete(f"/v1/users/{created['user']['id']}", headers=ADMIN).json(),
    )

    error = client.post("/v1/conversations", json={"title": 1}, headers=alice.headers)
    body = error.json()
    _assert_matches(doc, "ErrorBody", body)
    _assert_matches(doc, "ErrorInfo", assert_error(error, 422))
    for detail in body["error"]["details"]:
        _assert_matches(doc, "ErrorDetail", detail)


def _operations_with(doc: Json, security: bool) -> Iterator[tuple[str, str, Json]]:
    for path, method, operation in _doc_operations(doc):
        if bool(operation["security"]) is security:
            yield path, method, operation


def _query(operation: Json, name: str) -> Json:
    (parameter,) = [p for p in operation["parameters"] if p["name"] == name]
    return parameter


def test_openapi_query_parameters_have_their_ranges(doc: Json) -> None:
    paths = doc["paths"]
    messages = paths["/v1/conversations/{conversation_id}/messages"]["get"]
    for path, maximum in (
        ("/v1/conversations", 200),
        ("/v1/threads", 200),
        ("/v1/conversations/{conversation_id}/messages", 200),
        ("/v1/threads/{thread_id}/history", 200),
    ):
        limit = _query(paths[path]["get"], "limit")["schema"]
        assert limit["type"] == "integer"
        assert (limit["minimum"], limit["maximum"]) == (1, maximum), path
    for name in ("before", "after"):
        seq = _query(messages, name)["schema"]
        assert (seq["type"], seq["minimum"], seq["maximum"]) == ("integer", 0, 2**63 - 1)
    history = paths["/v1/threads/{thread_id}/history"]["get"]
    metadata = _query(history, "metadata")["content"]["application/json"]["schema"]
    assert metadata["type"] == "object"


def test_openapi_user_routes_document_403_for_the_admin_token(doc: Json) -> None:
    for path, method, operation in _operations_with(doc, security=True):
        forbidden = operation["responses"]["403"]["description"]
        if path.startswith(("/v1/users", "/v1/admin/")):
            assert "admin token" in forbidden, (method, path)
        else:
            assert "acts for no user" in forbidden, (method, path)


def test_openapi_every_database_route_documents_503_with_retry_after_and_504(doc: Json) -> None:
    for path, method, operation in _doc_operations(doc):
        responses = operation["responses"]
        retry_after = responses["503"]["headers"]["Retry-After"]
        assert retry_after["required"] is True
        assert retry_after["schema"]["type"] == "integer"
        if path != "/health":
            assert "504" in responses, (method, path)
        assert "400" in responses, (method, path)  # a malformed path or query string
        if "{" in path:
            assert "404" in responses, (method, path)
        if "401" in responses:
            assert "WWW-Authenticate" in responses["401"]["headers"]


def test_openapi_if_match_pattern_takes_what_the_route_takes(
    client: TestClient, doc: Json, alice: Caller
) -> None:
    operation = doc["paths"]["/v1/conversations/{conversation_id}"]["patch"]
    pattern = re.compile(_query(operation, "If-Match")["schema"]["pattern"])
    conversation = make_conversation(client, alice)
    url = f"/v1/conversations/{conversation['id']}"
    for value in ('"1"', "1", 'W/"1"', "*", ' "1" '):
        assert pattern.search(value), value
        response = client.patch(
            url, json={"title": "t"}, headers={**alice.headers, "If-Match": value}
        )
        assert response.status_code in (200, 412), (value, response.text)
    for value in ("", "abc", '"²"', '"1234567890"', "W/", '"-1"'):
        assert not pattern.search(value), value
        headers = {**alice.headers, "If-Match": value.encode()}
        response = client.patch(url, json={"title": "t"}, headers=headers)
        assert_error(response, 400)


def test_openapi_request_bodies_refuse_nul_and_describe_parts(doc: Json) -> None:
    schemas = doc["components"]["schemas"]
    for name in ("UserDraft", "MessageDraft", "MessagePatch", "ThreadStateDraft"):
        # Inputs are JsonInput (no NUL, ...); outputs JsonValue (any JSON).
        assert "JsonValue" not in str(schemas[name]) and "JsonInput" in str(schemas[name])
    json_input = schemas["JsonInput"]
    (string,) = [s for s in json_input["anyOf"] if s["type"] == "string"]
    assert not re.search(string["pattern"], "a\x00b") and re.search(string["pattern"], "ab")
    parts = schemas["MessageDraft"]["properties"]["parts"]["items"]
    assert parts["required"] == ["type"]
    text_rule = {
        "if": {"properties": {"type": {"const": "text"}}},
        "then": {"required": ["text"], "properties": {"text": {"type": "string"}}},
    }
    assert text_rule in parts["allOf"]
    for patch in ("UserPatch", "ConversationPatch", "MessagePatch"):
        assert schemas[patch]["minProperties"] == 1
    # null clears a display name or a thread link, but metadata cannot be null.
    assert {"type": "null"} in schemas["UserPatch"]["properties"]["display_name"]["anyOf"]
    assert {"type": "null"} in schemas["ConversationPatch"]["properties"]["thread_id"]["anyOf"]
    assert schemas["UserPatch"]["properties"]["metadata"]["type"] == "object"
    assert (
        "source"
        in schemas["ThreadStateDraft"]["properties"]["metadata"]["propertyNames"]["not"]["enum"]
    )


def test_openapi_response_schemas_are_the_serialized_records(doc: Json) -> None:
    schemas = doc["components"]["schemas"]
    # Every field of a response is always written, those with a default too.
    assert set(schemas["Health"]["required"]) == {"status", "server_version", "pending_migrations"}
    for name in ("User", "UserCreated", "Message", "ThreadState", "ErrorDetail"):
        assert set(schemas[name]["required"]) == set(schemas[name]["properties"]), name
    # An error's details are left out when there are none.
    assert set(schemas["ErrorInfo"]["required"]) == {"code", "message"}
    assert schemas["ErrorInfo"]["properties"]["details"]["type"] == "array"


def test_openapi_document_follows_the_settings() -> None:
    small = _settings(app_max_body_bytes=1234)
    doc = TestClient(create_app(small)).get("/openapi.json").json()
    description = doc["paths"]["/v1/conversations"]["post"]["responses"]["413"]["description"]
    assert "1234 bytes" in description


async def _nothing(request: Any) -> Any:
    return no_content()


def test_endpoint_declarations_refuse_what_the_document_could_not_say() -> None:
    # A path parameter that is not a UUID needs its schema declared.
    with pytest.raises(ValueError, match="declare the path parameter"):
        Endpoint("GET", "/v1/things/{name:str}", _nothing, "A thing")
    with pytest.raises(ValueError, match="convertor"):
        Endpoint("GET", "/v1/things/{name}", _nothing, "A thing")
    with pytest.raises(ValueError, match="method"):
        Endpoint("FETCH", "/v1/things", _nothing, "Things")
    declared = Endpoint(
        "GET",
        "/v1/things/{name:str}",
        _nothing,
        "A thing",
        path_params=(PathParam("name", {"type": "string"}),),
    )
    assert declared.openapi_path == "/v1/things/{name}"
    with pytest.raises(ValueError, match="declared twice"):
        routes_of([declared, declared])


def test_endpoints_of_a_path_are_one_route_with_every_method() -> None:
    endpoints = Endpoints()
    endpoints.get("/v1/things", "Things")(_nothing)
    endpoints.post("/v1/things", "Add a thing")(_nothing)
    endpoints.get("/v1/other", "Others")(_nothing)

    routes = routes_of(endpoints)

    assert [(r.path, r.methods) for r in routes] == [
        ("/v1/things", {"GET", "HEAD", "POST"}),
        ("/v1/other", {"GET", "HEAD"}),
    ]


def test_a_handler_reads_the_body_its_endpoint_declares() -> None:
    from pydantic import BaseModel

    from app.endpoints import body_of

    class Declared(BaseModel):
        name: str

    class Other(BaseModel):
        name: str

    async def reads_declared(request: Any) -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse((await body_of(request, Declared)).model_dump())

    async def reads_other(request: Any) -> Any:
        await body_of(request, Other)
        return no_content()

    endpoints = Endpoints()
    endpoints.post("/v1/declared", "Declared", auth="none", body=Declared, body_optional=True)(
        reads_declared
    )
    endpoints.post("/v1/other", "Other", auth="none", body=Declared)(reads_other)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        yield {"settings": _settings()}  # the body limits read_json applies

    app = Starlette(routes=routes_of(endpoints), lifespan=lifespan)
    with TestClient(app, raise_server_exceptions=True) as client:
        assert client.post("/v1/declared", json={"name": "a"}).json() == {"name": "a"}
        with pytest.raises(TypeError, match="declares body="):
            client.post("/v1/other", json={"name": "a"})
