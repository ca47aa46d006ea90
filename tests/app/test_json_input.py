"""JSON a client sends (metadata, message parts, thread values and metadata, the history's
``metadata=`` filter) is stored as sent under the README's number rule, or refused with a 4xx
that stores nothing: no number a double cannot hold, no integer beyond 64 bits, no nesting
deeper than APP_MAX_JSON_DEPTH; never a 500, never a silent change."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app import create_app
from dal.settings import Settings
from tests.app.conftest import (
    ADMIN,
    Caller,
    Json,
    TestClient,
    append,
    assert_error,
    count_rows,
    make_conversation,
    messages_url,
)

JSON = {"content-type": "application/json"}
DEPTH = Settings.model_fields["app_max_json_depth"].default
# 1 followed by 250 zeros, e99: 1e349, past a double's range, yet no three-digit exponent
# and under 300 digits (the text pattern that used to guard the NaN/Infinity check).
OVERFLOW = b"1" + b"0" * 250 + b"e99"
TOO_LARGE = [
    OVERFLOW,
    b"-" + OVERFLOW,
    b"1e309",
    b"-2e308",
    b"0.00001e314",
    b"1" + b"0" * 309 + b".5",
    b"1e400",
    b"9223372036854775808",  # 2**63
    b"-9223372036854775809",
    b"18446744073709551615",  # 2**64 - 1
    b"99999999999999999999",
    b"1" + b"0" * 400,
    b"7" * 5_000,  # the parser itself stops past 4,300 digits (was 400 "not valid JSON")
    b"-" + b"7" * 5_000 + b".5",
]


def nested(depth: int, leaf: bytes = b"1") -> bytes:
    """JSON text of a value ``depth`` containers deep (objects and arrays in turn)."""
    opening = b"".join(b'{"k": ' if i % 2 == 0 else b"[" for i in range(depth))
    closing = b"".join(b"}" if i % 2 == 0 else b"]" for i in reversed(range(depth)))
    return opening + leaf + closing


def test_nested_helper_makes_that_depth() -> None:
    assert json.loads(nested(3)) == {"k": [{"k": 1}]}
    assert json.loads(nested(1, b"[]")) == {"k": []}


def snapshot(settings: Settings) -> list[int | str]:
    """Every stored row, as a count and a hash per table (any write changes it)."""
    found: list[int | str] = []
    for table in ("users", "conversations", "messages", "threads", "checkpoints"):
        found.append(count_rows(settings, f"SELECT count(*) FROM {table}"))
        found.append(
            count_rows(
                settings,
                "SELECT ('x' || md5(coalesce(string_agg(to_jsonb(t)::text, ',' ORDER BY"
                f" to_jsonb(t)::text), '')))::bit(60)::int8 FROM {table} AS t",
            )
        )
    return found


Target = tuple[str, str, Callable[[bytes], bytes], dict[str, str]]


@pytest.fixture
def targets(client: TestClient, alice: Caller) -> list[Target]:
    """(method, path, body of a JSON value, headers): every place a client's JSON is stored."""
    conversation = make_conversation(client, alice, metadata={"kept": 1})
    conv = f"/v1/conversations/{conversation['id']}"
    message = append(client, alice, conversation["id"], status="streaming")
    msg = f"{messages_url(conversation['id'])}/{message['id']}"
    response = client.put("/v1/threads/t-1/state", json={"values": {"n": 1}}, headers=alice.headers)
    assert response.status_code == 201, response.text

    def part(value: bytes) -> bytes:
        return b'[{"type": "data-x", "data": ' + value + b"}]"

    names = itertools.count()

    def new_user(value: bytes) -> bytes:
        return b'{"username": "u%d", "metadata": {"x": %b}}' % (next(names), value)

    return [
        ("POST", "/v1/conversations", lambda v: b'{"metadata": {"x": ' + v + b"}}", alice.headers),
        ("PATCH", conv, lambda v: b'{"metadata": {"x": [' + v + b"]}}", alice.headers),
        ("POST", "/v1/users", new_user, ADMIN),
        ("PATCH", "/v1/me", lambda v: b'{"metadata": {"x": {"y": ' + v + b"}}}", alice.headers),
        ("PATCH", f"/v1/users/{alice.id}", lambda v: b'{"metadata": {"x": ' + v + b"}}", ADMIN),
        (
            "POST",
            messages_url(conversation["id"]),
            lambda v: b'{"role": "user", "parts": ' + part(v) + b"}",
            alice.headers,
        ),
        (
            "POST",
            messages_url(conversation["id"]),
            lambda v: b'{"role": "user", "parts": [], "metadata": {"x": ' + v + b"}}",
            alice.headers,
        ),
        ("PATCH", msg, lambda v: b'{"append_parts": ' + part(v) + b"}", alice.headers),
        ("PATCH", msg, lambda v: b'{"parts": ' + part(v) + b"}", alice.headers),
        ("PATCH", msg, lambda v: b'{"metadata": {"x": ' + v + b"}}", alice.headers),
        ("PUT", "/v1/threads/t-1/state", lambda v: b'{"values": {"x": ' + v + b"}}", alice.headers),
        (
            "PUT",
            "/v1/threads/t-1/state",
            lambda v: b'{"values": {"x": [' + v + b"]}}",
            alice.headers,
        ),
        (
            "PUT",
            "/v1/threads/t-2/state",
            lambda v: b'{"values": {}, "metadata": {"x": ' + v + b"}}",
            alice.headers,
        ),
    ]


def send(client: TestClient, target: Target, value: bytes) -> Any:
    method, path, body, headers = target
    return client.request(method, path, content=body(value), headers={**headers, **JSON})


# --- numbers ----------------------------------------------------------------------------


def test_numbers_no_double_or_int64_holds_are_422_everywhere_and_store_nothing(
    client: TestClient, settings: Settings, targets: list[Target]
) -> None:
    before = snapshot(settings)
    for target in targets:
        for number in TOO_LARGE:
            response = send(client, target, number)
            error = assert_error(response, 422)
            assert "number" in error["message"] or "integer" in error["message"], error
            if len(number) > 25:
                assert number.decode()[:25] not in error["message"]  # never echoed back
    assert snapshot(settings) == before


def test_numbers_in_range_are_stored_everywhere(
    client: TestClient, settings: Settings, targets: list[Target]
) -> None:
    for target in targets:
        for number in (b"1.7976931348623157e308", b"-9223372036854775808", b"5e-324"):
            response = send(client, target, number)
            assert response.status_code in (200, 201), (target[:2], number, response.text)


def _metadata_number(client: TestClient, caller: Caller, literal: bytes) -> Any:
    body = b'{"metadata": {"x": ' + literal + b"}}"
    response = client.post("/v1/conversations", content=body, headers={**caller.headers, **JSON})
    assert response.status_code == 201, response.text
    got = client.get(f"/v1/conversations/{response.json()['id']}", headers=caller.headers)
    return got.json()["metadata"]["x"]


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        # Read as doubles are (the nearest one), as JavaScript's JSON.parse reads them.
        (b"0.1000000000000000000000000001", 0.1),
        (b"1e-400", 0.0),
        (b"2.4703282292062328e-324", 5e-324),  # just over half the smallest subnormal
        (b"2.4703282292062327e-324", 0.0),  # just under
        (b"123456789012345678901234567890.0", 1.2345678901234568e29),
        (b"1.0", 1.0),
        (b"1E2", 100.0),
        (b"9223372036854775807", 9223372036854775807),
        (b"-9223372036854775808", -9223372036854775808),
    ],
)
def test_numbers_are_read_as_the_readme_says(
    client: TestClient, alice: Caller, literal: bytes, expected: float | int
) -> None:
    got = _metadata_number(client, alice, literal)
    assert got == expected and type(got) is type(expected), (literal, got)


# --- nesting ----------------------------------------------------------------------------


def test_default_depth_limit_is_in_the_documented_range() -> None:
    assert 64 <= DEPTH <= 100


def test_json_nested_to_the_limit_is_stored_and_one_level_more_is_422_naming_it(
    client: TestClient, settings: Settings, targets: list[Target]
) -> None:
    # Each target wraps the value in containers of its own (metadata's object, a part...):
    # find, per target, the deepest value that is accepted, and check the one below is refused.
    for target in targets:
        for depth in (DEPTH + 1, DEPTH + 2, 150, 199, 1_000, 100_000):
            error = assert_error(send(client, target, nested(depth)), 422)
            assert f"{DEPTH} levels" in error["message"], (target[:2], depth, error)
        assert send(client, target, nested(DEPTH - 3)).status_code in (200, 201), target[:2]
    before = snapshot(settings)
    for target in targets:
        assert_error(send(client, target, nested(DEPTH)), 422)
    assert snapshot(settings) == before


def test_metadata_at_the_depth_limit_round_trips(client: TestClient, alice: Caller) -> None:
    value = json.loads(nested(DEPTH - 1))  # inside the metadata object: DEPTH levels
    conversation = make_conversation(client, alice, metadata={"x": value})
    got = client.get(f"/v1/conversations/{conversation['id']}", headers=alice.headers)
    assert got.json()["metadata"] == {"x": value}
    response = client.post(
        "/v1/conversations", json={"metadata": {"x": [value]}}, headers=alice.headers
    )
    error = assert_error(response, 422)
    assert f"nested deeper than {DEPTH} levels" in error["message"]


def test_thread_values_at_the_depth_limit_round_trip(client: TestClient, alice: Caller) -> None:
    value = json.loads(nested(DEPTH - 1))  # inside the values object: DEPTH levels
    response = client.put(
        "/v1/threads/t/state",
        json={"values": {"x": value, "y": [1.5, -0.5]}},
        headers=alice.headers,
    )
    assert response.status_code == 201, response.text
    state = client.get("/v1/threads/t/state", headers=alice.headers).json()
    assert state["values"] == {"x": value, "y": [1.5, -0.5]}
    response = client.put(
        "/v1/threads/t/state", json={"values": {"x": [value]}}, headers=alice.headers
    )
    assert f"nested deeper than {DEPTH} levels" in assert_error(response, 422)["message"]


def test_body_nested_past_the_parser_is_422_naming_the_limit_not_malformed(
    client: TestClient, alice: Caller
) -> None:
    for depth in (198, 199, 200, 201, 5_000):
        body = b'{"metadata": ' + nested(depth) + b"}"
        response = client.post("/v1/conversations", content=body, headers={**alice.headers, **JSON})
        error = assert_error(response, 422)
        assert f"nested deeper than {DEPTH} levels" in error["message"], (depth, error)
    # An unknown field, deep: still the limit (the parser stops before the fields are known).
    body = b'{"other": ' + nested(300) + b"}"
    response = client.post("/v1/conversations", content=body, headers={**alice.headers, **JSON})
    assert f"{DEPTH} levels" in assert_error(response, 422)["message"]


@pytest.mark.parametrize("depth", [DEPTH + 1, 255, 256, 999, 1_000, 1_023, 1_024, 1_025, 2_000])
def test_history_metadata_filter_nested_too_deep_is_422_naming_the_limit(
    client: TestClient, alice: Caller, depth: int
) -> None:
    client.put("/v1/threads/t/state", json={"values": {"n": 1}}, headers=alice.headers)
    response = client.get(
        "/v1/threads/t/history", params={"metadata": nested(depth).decode()}, headers=alice.headers
    )
    error = assert_error(response, 422, "invalid_input")
    assert f"metadata: nested deeper than {DEPTH} levels" in error["message"], error


def test_history_metadata_filter_at_the_limit_and_its_numbers(
    client: TestClient, alice: Caller
) -> None:
    deep = json.loads(nested(DEPTH))
    response = client.put(
        "/v1/threads/t/state",
        json={"values": {"n": 1}, "metadata": {**deep, "n": 2}},
        headers=alice.headers,
    )
    assert response.status_code == 201, response.text
    url = "/v1/threads/t/history"
    found = client.get(url, params={"metadata": nested(DEPTH).decode()}, headers=alice.headers)
    assert found.status_code == 200, found.text
    assert len(found.json()["items"]) == 1
    by_number = client.get(url, params={"metadata": '{"n": 2.0}'}, headers=alice.headers)
    assert len(by_number.json()["items"]) == 1
    for number in TOO_LARGE:
        response = client.get(
            url, params={"metadata": f'{{"n": {number.decode()}}}'}, headers=alice.headers
        )
        assert_error(response, 422, "invalid_input")
    for bad in ("NaN", '{"n": NaN}', '{"n": Infinity}', '{"a": "\\u0000"}', "[1]", "{"):
        assert_error(client.get(url, params={"metadata": bad}, headers=alice.headers), 422)


@pytest.fixture
def shallow_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"app_max_json_depth": 3}))) as client:
        yield client


def test_depth_limit_is_the_setting(shallow_client: TestClient, alice: Caller) -> None:
    client = shallow_client
    ok: Json = {"metadata": {"a": {"b": [1]}}}  # the metadata object is 3 levels deep
    assert client.post("/v1/conversations", json=ok, headers=alice.headers).status_code == 201
    response = client.post(
        "/v1/conversations", json={"metadata": {"a": {"b": [[1]]}}}, headers=alice.headers
    )
    error = assert_error(response, 422)
    assert "metadata: nested deeper than 3 levels" in error["message"], error
    response = client.get(
        "/v1/threads/t/history", params={"metadata": nested(4).decode()}, headers=alice.headers
    )
    assert "nested deeper than 3 levels" in assert_error(response, 422)["message"]


# --- values a LangGraph graph wrote (from Python, past the HTTP limit) ---------------------


def _deep_list(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [200, 250, 252, 254])
def test_state_a_graph_wrote_nested_past_what_json_output_takes_is_never_500(
    client: TestClient, alice: Caller, settings: Settings, depth: int
) -> None:
    import asyncio

    from langgraph.checkpoint.base import ChannelVersions

    from dal.database import open_pool
    from dal.langgraph import AsyncpgSaver

    async def write() -> None:
        pool = await open_pool(settings)
        try:
            saver = AsyncpgSaver(pool)
            config = {"configurable": {"thread_id": "g", "checkpoint_ns": "", "user_id": alice.id}}
            versions: ChannelVersions = {"deep": saver.get_next_version(None, None)}
            saved = await saver.aput(
                config,  # type: ignore[arg-type]
                {
                    "v": 4,
                    "id": "1f0c0000-0000-6000-8000-000000000001",
                    "ts": "2026-11-23T10:00:00+00:00",
                    "channel_values": {"deep": _deep_list(depth)},
                    "channel_versions": versions,
                    "versions_seen": {},
                    "updated_channels": ["deep"],
                },
                # (the saver writes metadata as jsonb, which stops a little deeper than 240)
                {"source": "loop", "step": 1, "parents": {}, "deep": _deep_list(240)},
                versions,
            )
            await saver.aput_writes(saved, [("deep", _deep_list(depth))], task_id="task-1")
        finally:
            await pool.close()

    asyncio.run(write())
    for path in ("/v1/threads/g/state", "/v1/threads/g/history"):
        response = client.get(path, headers=alice.headers)
        assert response.status_code == 200, (path, response.text[:300])
    state = client.get("/v1/threads/g/state", headers=alice.headers).json()
    shown = [state["values"]["deep"], state["pending_writes"][0]["value"]]
    if depth <= 200:  # dal.langgraph.json_values.MAX_SHOWN_DEPTH
        assert shown == [_deep_list(depth)] * 2
    else:  # shown as a value that cannot be decoded: its serialization, base64
        assert all(value["undecodable"] is True for value in shown), shown


@pytest.fixture
def deepest_client(settings: Settings) -> Iterator[TestClient]:
    bounds = Settings.model_fields["app_max_json_depth"].metadata
    highest = next(bound.le for bound in bounds if hasattr(bound, "le"))
    assert highest == 128
    with TestClient(create_app(settings.model_copy(update={"app_max_json_depth": 128}))) as c:
        yield c


def test_values_at_the_highest_depth_setting_are_stored_and_read_everywhere(
    deepest_client: TestClient, alice: Caller
) -> None:
    # The setting's bound is what the whole path takes: parser, encoders, responses.
    client = deepest_client
    value = json.loads(nested(127))  # in its object: 128 levels
    conversation = make_conversation(client, alice, metadata={"v": value})
    assert client.get(f"/v1/conversations/{conversation['id']}", headers=alice.headers).json()[
        "metadata"
    ] == {"v": value}
    message = append(client, alice, conversation["id"], parts=[{"type": "data-v", "data": value}])
    got = client.get(f"{messages_url(conversation['id'])}/{message['id']}", headers=alice.headers)
    assert got.json()["parts"] == [{"type": "data-v", "data": value}]
    response = client.put(
        "/v1/threads/t/state",
        json={"values": {"v": value}, "metadata": {"v": value}},
        headers=alice.headers,
    )
    assert response.status_code == 201, response.text
    for path in ("state", "history"):
        response = client.get(f"/v1/threads/t/{path}", headers=alice.headers)
        assert response.status_code == 200, response.text
    state = client.get("/v1/threads/t/state", headers=alice.headers).json()
    assert state["values"]["v"] == value and state["metadata"]["v"] == value
    found = client.get(
        "/v1/threads/t/history",
        params={"metadata": json.dumps({"v": value})},
        headers=alice.headers,
    )
    assert len(found.json()["items"]) == 1
    too_deep = client.post(
        "/v1/conversations", json={"metadata": {"v": [value]}}, headers=alice.headers
    )
    assert "nested deeper than 128 levels" in assert_error(too_deep, 422)["message"]
