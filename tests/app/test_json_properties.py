"""Property tests: arbitrary JSON in message parts and metadata, conversation and user
metadata, thread values and metadata, and the history's metadata filter either comes back as
it was sent, under the README's number rule, or is refused with a 4xx (never a 500, never
silently changed) — and a model of the rule says which, so a server refusing everything fails.

The values mix NUL, lone surrogates, every kind of double (subnormals, -0.0, the largest),
number literals of any length and exponent, integers past 64 bits, long strings, unicode, and
nesting around the depth limit. Bounded: a few hundred requests in all.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dal.records.base import INT64_MAX, INT64_MIN, MAX_JSON_DEPTH
from dal.settings import Settings
from tests.app.conftest import Caller, TestClient, make_conversation, messages_url

JSON = {"content-type": "application/json"}
BODY_LIMIT = Settings.model_fields["app_max_body_bytes"].default
BOUNDED = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --- values, and what the rule says of them ---------------------------------------------


@dataclass(frozen=True)
class Literal:
    """A number as JSON text, sent as written (to reach the server's parser as it is)."""

    text: str


@dataclass(frozen=True)
class LoneSurrogate:
    """A string holding an unpaired UTF-16 surrogate, which JSON text can spell (\\ud800)."""

    escape: str


class Refused(Exception):
    """The rule says the value cannot be stored as sent."""


def expected(value: Any) -> Any:
    """What the server must give back (numbers as ints or floats), or Refused."""
    if isinstance(value, LoneSurrogate):
        raise Refused("lone surrogate")
    if isinstance(value, Literal):
        if not any(c in value.text for c in ".eE"):  # an integer
            number = int(value.text)
            if not INT64_MIN <= number <= INT64_MAX:
                raise Refused("integer beyond 64 bits")
            return number
        parsed = float(value.text)  # the nearest double, as JavaScript reads it
        if math.isinf(parsed):
            raise Refused("beyond a double")
        return parsed
    if isinstance(value, str):
        if "\x00" in value:
            raise Refused("NUL")
        return value
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise Refused("integer beyond 64 bits")
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, list):
        return [expected(item) for item in value]
    assert isinstance(value, dict)
    return {expected(key): expected(item) for key, item in value.items()}


def depth(value: Any) -> int:
    """Containers nested in ``value`` (a scalar: 0)."""
    if isinstance(value, list):
        return 1 + max((depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(item) for item in value.values()), default=0)
    return 0


def dumps(value: Any, ascii_only: bool) -> str:
    """JSON text of a value, literals and lone surrogates written as they are."""
    if isinstance(value, Literal):
        return value.text
    if isinstance(value, LoneSurrogate):
        return f'"a{value.escape}b"'
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as this double
    if isinstance(value, list):
        return "[" + ",".join(dumps(item, ascii_only) for item in value) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(
                f"{json.dumps(key, ensure_ascii=ascii_only)}:{dumps(item, ascii_only)}"
                for key, item in value.items()
            )
            + "}"
        )
    return json.dumps(value, ensure_ascii=ascii_only)


def same(want: Any, got: Any) -> bool:
    """``got`` is ``want`` under the number rule: integers exact, floats the same double
    (written as an integer or with -0 as 0 is the same double)."""
    if isinstance(want, bool) or want is None or isinstance(want, str):
        return type(got) is type(want) and got == want
    if isinstance(want, int):
        return type(got) is int and got == want
    if isinstance(want, float):
        return type(got) in (int, float) and float(got) == want
    if isinstance(want, list):
        return (
            isinstance(got, list)
            and len(got) == len(want)
            and all(same(w, g) for w, g in zip(want, got, strict=True))
        )
    assert isinstance(want, dict)
    return (
        isinstance(got, dict)
        and got.keys() == want.keys()
        and all(same(item, got[key]) for key, item in want.items())
    )


# --- strategies -------------------------------------------------------------------------

_PLAIN = st.characters(codec="utf-8", exclude_characters="\x00")  # any scalar value but NUL
_texts = st.one_of(
    st.text(_PLAIN, max_size=12),
    st.text(_PLAIN, max_size=12),
    st.text(st.characters(codec="utf-8"), max_size=6),  # NUL among others
    st.sampled_from(["", "\\u0000", "\\", '"', "\u2028\u2029", "🦊👩‍👩‍👧‍👦", "עברית", "e\u0301"]),
)
_long_texts = st.builds(
    lambda piece, times: piece * times,
    st.text(_PLAIN, min_size=1, max_size=4),
    st.integers(1_000, 200_000),
)


def _literal(sign: str, whole: str, fraction: str | None, exponent: int | None) -> Literal:
    text = sign + (whole.lstrip("0") or "0")
    if fraction is not None:
        text += "." + fraction
    if exponent is not None:
        text += f"e{exponent}"
    return Literal(text)


_digits = st.text("0123456789", min_size=1, max_size=40)
_literals = st.one_of(
    st.builds(
        _literal,
        st.sampled_from(["", "-"]),
        _digits,
        st.none() | _digits,
        st.none() | st.integers(-420, 420),
    ),
    st.sampled_from(
        [
            "1" + "0" * 250 + "e99",
            "1e308",
            "1.7976931348623157e308",
            "1.7976931348623158e308",  # rounds down to the largest double
            "1.7976931348623159e308",  # past it
            "2.4703282292062328e-324",
            "2.4703282292062327e-324",
            "4.9e-324",
            "-0",
            "-0.0",
            "0e0",
            "1E+2",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "18446744073709551616",
        ]
    ).map(Literal),
)
_numbers = st.one_of(
    st.integers(INT64_MIN, INT64_MAX),
    st.sampled_from([INT64_MIN, INT64_MAX, 2**53 + 1, 0, -1]),
    st.integers(INT64_MAX + 1, 10**100) | st.integers(-(10**100), INT64_MIN - 1),
    st.floats(allow_nan=False, allow_infinity=False),  # subnormals, -0.0, the largest
    st.sampled_from([5e-324, -0.0, 1.7976931348623157e308, 2.0**62, 1e16, 0.1]),
    _literals,
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    _texts,
    _numbers,
    _numbers,
    st.sampled_from(["\\ud800", "\\udfff", "\\udc00\\ud800"]).map(LoneSurrogate),
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=4) | st.dictionaries(_texts, children, max_size=4)


_values = st.recursive(_scalars, _containers, max_leaves=12)


@st.composite
def stored_values(draw: st.DrawFn, *, long_strings: bool = True) -> Any:
    """A value for one place that holds JSON (inside an object: one more level), nested
    around the depth limit now and then, with a long string now and then."""
    value = draw(_values)
    if long_strings and draw(st.integers(0, 9)) == 0:
        value = [value, draw(_long_texts)]
    if draw(st.integers(0, 3)) == 0:  # wrap to 1 + depth within 2 of the limit
        target = MAX_JSON_DEPTH - 1 + draw(st.integers(-2, 2))
        for i in range(max(0, target - depth(value))):
            value = [value] if i % 2 else {"k": value}
    return value


def check(response: Any, sent: list[Any], body: str, got: list[Any] | None) -> None:
    """The response to storing the values ``sent``, each inside an object (one level more);
    ``got``: what reading them back gave, if the response was a success."""
    assert response.status_code < 500, response.text
    try:
        want = [expected(value) for value in sent]
        if any(depth(value) + 1 > MAX_JSON_DEPTH for value in sent):
            raise Refused("too deep")
        if len(body.encode()) > BODY_LIMIT:
            raise Refused("body too large")
    except Refused as why:
        event(f"refused: {why}")  # --hypothesis-show-statistics tells how often, and why
        assert response.status_code in (400, 413, 422), (str(why), response.text)
        return
    event("stored")
    assert response.status_code in (200, 201), response.text
    assert got is not None and len(got) == len(want)
    for one, back in zip(want, got, strict=True):
        assert same(one, back), (one, back)


def _send(client: TestClient, method: str, url: str, caller: Caller, body: str) -> Any:
    return client.request(method, url, content=body.encode(), headers={**caller.headers, **JSON})


# --- the properties ---------------------------------------------------------------------


def test_conversation_and_user_metadata_round_trip_or_4xx(
    client: TestClient, alice: Caller
) -> None:
    @BOUNDED
    @given(value=stored_values(), ascii_only=st.booleans())
    def prop(value: Any, ascii_only: bool) -> None:
        body = '{"metadata": {"v": ' + dumps(value, ascii_only) + "}}"
        response = _send(client, "POST", "/v1/conversations", alice, body)
        got = None
        if response.status_code == 201:
            read = client.get(f"/v1/conversations/{response.json()['id']}", headers=alice.headers)
            # What the write answered, then what a read gives.
            got = [response.json()["metadata"]["v"], read.json()["metadata"]["v"]]
        check(response, [value, value], body, got)

        response = _send(client, "PATCH", "/v1/me", alice, body)
        got = None
        if response.status_code == 200:
            got = [client.get("/v1/me", headers=alice.headers).json()["metadata"]["v"]]
        check(response, [value], body, got)

    prop()


def test_message_parts_and_metadata_round_trip_or_4xx(client: TestClient, alice: Caller) -> None:
    conversation = make_conversation(client, alice)
    url = messages_url(conversation["id"])

    @BOUNDED
    @given(value=stored_values(), ascii_only=st.booleans(), where=st.booleans())
    def prop(value: Any, ascii_only: bool, where: bool) -> None:
        text = dumps(value, ascii_only)
        if where:  # in a part ({"type", "data"}: the part is the object)
            body = '{"role": "user", "parts": [{"type": "data-x", "data": ' + text + "}]}"
        else:
            body = '{"role": "user", "parts": [], "metadata": {"v": ' + text + "}}"
        response = _send(client, "POST", url, alice, body)
        got = None
        if response.status_code == 201:
            read = client.get(f"{url}/{response.json()['id']}", headers=alice.headers).json()
            got = [read["parts"][0]["data"] if where else read["metadata"]["v"]]
        check(response, [value], body, got)

    prop()


def test_thread_values_and_metadata_round_trip_or_4xx(client: TestClient, alice: Caller) -> None:
    @BOUNDED
    @given(value=stored_values(), scalar=_scalars, ascii_only=st.booleans())
    def prop(value: Any, scalar: Any, ascii_only: bool) -> None:
        # "v" a value (lists and objects are serialized by LangGraph's serializer), "s" a
        # scalar (kept inline in the checkpoint's jsonb), and the same value in the metadata.
        body = (
            '{"values": {"v": '
            + dumps(value, ascii_only)
            + ', "s": '
            + dumps(scalar, ascii_only)
            + '}, "metadata": {"v": '
            + dumps(value, ascii_only)
            + "}}"
        )
        response = _send(client, "PUT", "/v1/threads/t/state", alice, body)
        got = None
        if response.status_code == 201:
            state = client.get("/v1/threads/t/state", headers=alice.headers).json()
            got = [state["values"]["v"], state["values"]["s"], state["metadata"]["v"]]
        check(response, [value, scalar, value], body, got)

    prop()


def test_history_metadata_filter_finds_what_was_stored_or_4xx(
    client: TestClient, alice: Caller
) -> None:
    @BOUNDED
    @given(value=stored_values(long_strings=False))
    def prop(value: Any) -> None:
        text = '{"v": ' + dumps(value, True) + "}"
        body = '{"values": {}, "metadata": ' + text + "}"
        put = _send(client, "PUT", "/v1/threads/h/state", alice, body)
        found = client.get(
            "/v1/threads/h/history", params={"metadata": text, "limit": 1}, headers=alice.headers
        )
        assert found.status_code < 500, found.text
        if put.status_code == 201:
            assert found.status_code == 200, found.text
            assert len(found.json()["items"]) == 1  # the newest checkpoint has it
            check(put, [value], body, [expected(value)])
        else:
            check(put, [value], body, None)
            assert found.status_code in (404, 422), found.text

    prop()
