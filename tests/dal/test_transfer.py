"""Export and import (dal.usecases.transfer): round trips, derived columns as appends make
them, all-or-nothing imports, chunked exports in one snapshot."""

from __future__ import annotations

import json
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson
import pytest

from dal.errors import Conflict, InvalidInput, NotFound, TooLarge
from dal.gateways import conversations, messages, transfer
from dal.ids import new_id
from dal.records.conversations import ConversationDraft
from dal.records.messages import Message, MessageDraft
from dal.records.users import User
from dal.settings import Settings
from dal.usecases import transfer as usecase
from dal.usecases.transfer import (
    ConversationDocument,
    MalformedImport,
    export_all,
    export_conversation,
    import_conversations,
    read_documents,
)
from tests.dal.conftest import make_conversation, make_user

if TYPE_CHECKING:
    from tests.test_session_state import SessionRun

TOOL_STATES = ("input-streaming", "input-available", "output-available", "output-error")
# Parts of every AI SDK UI message type, with text and numbers that are awkward to store.
EVERY_PART: list[dict[str, Any]] = [
    {"type": "step-start"},
    {"type": "reasoning", "text": "思考中… 🤔", "providerMetadata": {"a": {"b": 0.1}}},
    {"type": "text", "text": 'He said "東京 会議" \\ tab\there\nnew line 😀', "state": "done"},
    *(
        {
            "type": "tool-getWeather",
            "toolCallId": f"call_{i}",
            "state": state,
            "input": {"city": "京都", "days": 3, "big": 2**63 - 1, "neg": -(2**63)},
            **({"output": {"tempC": [4.5, 1e300, -0.0, 1.5e-7, 100.0]}} if i == 2 else {}),
            **({"errorText": "city \u001f unknown"} if i == 3 else {}),
        }
        for i, state in enumerate(TOOL_STATES)
    ),
    {
        "type": "dynamic-tool",
        "toolName": "mcp.search",
        "toolCallId": "call_9",
        "state": "output-available",
        "input": {"q": "Kyoto 京都 trip"},
        "output": [],
    },
    {"type": "source-url", "sourceId": "s1", "url": "https://example.com/?q=é", "title": "Ex"},
    {"type": "source-document", "sourceId": "s2", "mediaType": "application/pdf", "title": "D"},
    {"type": "file", "mediaType": "image/png", "url": "data:image/png;base64,iVBORw0KGgo="},
    {"type": "data-weather", "id": "w1", "data": {"nested": [[1], {"a": {}}], "ok": True}},
    {"type": "text", "text": "second text part 🌞"},
]
METADATA: dict[str, Any] = {"model": "gpt", "usage": {"tokens": 12, "cost": 0.000125}, "x": None}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


async def read_all(pieces: Any) -> bytes:
    out = bytearray()
    async with aclosing(pieces) as stream:
        async for piece in stream:
            out += piece
    return bytes(out)


def without_ids_and_times(document: dict[str, Any]) -> dict[str, Any]:
    """A document with its ids and times left out: what a round trip must keep."""
    gone = {"id", "user_id", "conversation_id", "created_at", "updated_at", "last_message_at"}
    gone |= {"sender_id"}  # the importer's
    gone |= {"session_no"}  # chat sessions are activity: imported messages join none
    return {
        "conversation": {k: v for k, v in document["conversation"].items() if k not in gone},
        "messages": [{k: v for k, v in m.items() if k not in gone} for m in document["messages"]],
    }


async def seed(pool: Any, user: User, title: str = "chat", count: int = 3) -> Any:
    conv = await conversations.insert_conversation(
        pool,
        user_id=user.id,
        draft=ConversationDraft(title=title, metadata={"k": [1, 2.5]}, tags=["a", "中文"]),
    )
    drafts = [
        MessageDraft(role="user", parts=[text("京都で会議 🗾")], metadata={"n": 1}),
        MessageDraft(role="assistant", parts=EVERY_PART, metadata=METADATA),
        MessageDraft(role="assistant", parts=[], status="streaming"),
    ]
    for i in range(count):
        await messages.insert_message(
            pool, user_id=user.id, conversation_id=conv.id, draft=drafts[i % len(drafts)]
        )
    return await conversations.get_conversation(pool, user_id=user.id, conversation_id=conv.id)


async def stored_columns(pool: Any, conversation_id: Any) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT seq, role, parts, content, metadata, status, parts_bytes, parts_count,"
        " metadata_bytes, mnemo_parts_bytes(parts) AS sql_parts_bytes,"
        " octet_length(metadata::text) AS sql_metadata_bytes,"
        " mnemo_parts_text(parts) AS sql_content, jsonb_array_length(parts) AS sql_parts_count"
        " FROM messages WHERE conversation_id = $1 ORDER BY seq",
        conversation_id,
    )
    return [dict(row) for row in rows]


async def counters(pool: Any, conversation_id: Any) -> dict[str, Any]:
    row = await pool.fetchrow(
        "SELECT c.message_count, c.last_seq, c.last_message_at,"
        " (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS counted,"
        " (SELECT max(seq) FROM messages m WHERE m.conversation_id = c.id) AS max_seq,"
        " (SELECT max(created_at) FROM messages m WHERE m.conversation_id = c.id) AS newest"
        " FROM conversations c WHERE c.id = $1",
        conversation_id,
    )
    return dict(row)


async def test_export_import_export_is_identical_apart_from_ids_and_times(
    pool: Any, alice: User
) -> None:
    original = await seed(pool, alice, count=6)
    exported = await read_all(
        export_conversation(pool, user_id=alice.id, conversation_id=original.id)
    )
    document = json.loads(exported)
    assert [m["seq"] for m in document["messages"]] == [1, 2, 3, 4, 5, 6]
    assert document["messages"][1]["parts"] == EVERY_PART

    result = await import_conversations(pool, user_id=alice.id, documents=read_documents(exported))
    assert (result.conversation_count, result.message_count) == (1, 6)
    copy_id = result.conversations[0].id
    assert copy_id != original.id
    again = json.loads(
        await read_all(export_conversation(pool, user_id=alice.id, conversation_id=copy_id))
    )
    assert without_ids_and_times(again) == without_ids_and_times(document)
    assert {m["id"] for m in again["messages"]}.isdisjoint(m["id"] for m in document["messages"])

    # The derived columns and counters are what the appends gave the original.
    imported, appended = (
        await stored_columns(pool, copy_id),
        await stored_columns(pool, original.id),
    )
    assert imported == appended
    for row in imported:
        assert row["parts_bytes"] == row["sql_parts_bytes"]
        assert row["metadata_bytes"] == row["sql_metadata_bytes"]
        assert row["content"] == row["sql_content"]
        assert row["parts_count"] == row["sql_parts_count"]
    count = await counters(pool, copy_id)
    assert count["message_count"] == count["counted"] == count["last_seq"] == count["max_seq"] == 6
    assert count["last_message_at"] == count["newest"]


@pytest.mark.parametrize(
    "value",
    [
        0.1,
        1e300,
        -1e-300,
        -0.0,
        0.0,
        1.5e-7,
        100.0,
        1e16,
        123456.789,
        2**63 - 1,
        '\u0001\u001f\u007f"\\/\b\f\n\r\t',
        "東京 😀 é",
        {"zz": 1, "a": [], "bbb": {}, "": [None, True, False]},
        [[], [[]], {}],
    ],
)
async def test_sizes_computed_for_copy_are_the_sizes_postgresql_gives(
    pool: Any, value: Any
) -> None:
    parts = [{"type": "data-x", "data": value}, {"type": "text", "text": "t"}]
    metadata = {"v": value, "w": [value, value]}
    _, parts_bytes, _, metadata_bytes = usecase.jsonb_sizes(parts, metadata)
    expected = await pool.fetchrow(
        "SELECT mnemo_parts_bytes($1::jsonb) AS p, octet_length($2::jsonb::text) AS m",
        parts,
        metadata,
    )
    assert (parts_bytes, metadata_bytes) == (expected["p"], expected["m"])


async def test_import_of_ndjson_of_several_conversations_and_export_all(
    pool: Any, alice: User, bob: User
) -> None:
    for i in range(3):
        await seed(pool, alice, title=f"c{i}", count=i)
    await seed(pool, bob, title="bob's")
    exported = await read_all(export_all(pool, user_id=alice.id))
    lines = exported.decode().splitlines()
    assert [json.loads(line)["conversation"]["title"] for line in lines] == ["c2", "c1", "c0"]

    carol = await make_user(pool, "carol")
    result = await import_conversations(pool, user_id=carol.id, documents=read_documents(exported))
    assert [c.title for c in result.conversations] == ["c2", "c1", "c0"]
    assert [c.message_count for c in result.conversations] == [2, 1, 0]
    assert result.message_count == 3
    # The messages are the importer's (messages.user_id, which search filters by), as an
    # append would leave them.
    owners = await pool.fetch(
        "SELECT m.user_id, c.user_id AS owner FROM messages m"
        " JOIN conversations c ON c.id = m.conversation_id WHERE c.id = ANY($1::uuid[])",
        [c.id for c in result.conversations],
    )
    assert len(owners) == 3 and all(row["user_id"] == carol.id == row["owner"] for row in owners)
    again = await read_all(export_all(pool, user_id=carol.id))
    # Most recent activity first: the import wrote them in one transaction, in input order.
    assert sorted(
        orjson.dumps(without_ids_and_times(json.loads(line))) for line in again.splitlines()
    ) == sorted(orjson.dumps(without_ids_and_times(json.loads(line))) for line in lines)
    assert await read_all(export_all(pool, user_id=(await make_user(pool)).id)) == b""


async def test_export_reads_in_chunks_bounded_in_rows_and_bytes(
    pool: Any, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    conv = await make_conversation(pool, alice)
    for i in range(25):
        await messages.insert_message(
            pool,
            user_id=alice.id,
            conversation_id=conv.id,
            draft=MessageDraft(role="user", parts=[text(f"m{i} " + "x" * (i * 40))]),
        )
    whole = await read_all(export_conversation(pool, user_id=alice.id, conversation_id=conv.id))
    monkeypatch.setattr(usecase, "CHUNK_ROWS", 4)
    pieces = [p async for p in export_conversation(pool, user_id=alice.id, conversation_id=conv.id)]
    assert len(pieces) == 2 + 7 and b"".join(pieces) == whole  # header, 7 chunks, end
    monkeypatch.setattr(usecase, "CHUNK_ROWS", 1000)
    monkeypatch.setattr(usecase, "CHUNK_BYTES", 2000)
    pieces = [p async for p in export_conversation(pool, user_id=alice.id, conversation_id=conv.id)]
    assert b"".join(pieces) == whole
    # Each chunk holds at most 2000 bytes of parts, content and metadata (each message also
    # has its ids, seq, role, sender, branch, feedback counts and times), or is one message.
    counts = [p.count(b'"seq":') for p in pieces[1:-1]]
    assert len(counts) > 8 and sum(counts) == 25
    assert all(n == 1 or len(p) < 2000 + 500 * n for p, n in zip(pieces[1:-1], counts, strict=True))
    document = json.loads(whole)
    assert [m["seq"] for m in document["messages"]] == list(range(1, 26))


async def test_export_renders_like_the_records_and_is_one_snapshot(pool: Any, alice: User) -> None:
    conv = await seed(pool, alice, count=3)
    stream = export_conversation(pool, user_id=alice.id, conversation_id=conv.id)
    async with aclosing(stream):
        head = await anext(stream)
        # Appended after the export began: not in it.
        await messages.insert_message(
            pool,
            user_id=alice.id,
            conversation_id=conv.id,
            draft=MessageDraft(role="user", parts=[text("later")]),
        )
        rest = b"".join([piece async for piece in stream])
    document = json.loads(head + rest)
    assert len(document["messages"]) == 3
    page = await messages.list_messages(pool, user_id=alice.id, conversation_id=conv.id)
    expected = b",\n".join(m.model_dump_json().encode() for m in page.items[:3])
    assert expected in rest
    assert head.startswith(b'{"conversation":' + conv.model_dump_json().encode())


async def test_export_of_another_users_or_a_missing_conversation_raises_not_found(
    pool: Any, alice: User, bob: User
) -> None:
    conv = await seed(pool, alice, count=1)
    for user_id, conversation_id in ((bob.id, conv.id), (alice.id, new_id())):
        with pytest.raises(NotFound):
            await read_all(
                export_conversation(pool, user_id=user_id, conversation_id=conversation_id)
            )


async def test_export_stopped_early_gives_its_connection_back_clean(
    settings: Settings, alice: User
) -> None:
    from dal.database import open_pool

    one = await open_pool(
        settings.model_copy(update={"db_min_connections": 1, "db_max_connections": 1})
    )
    try:
        conv = await seed(one, alice, count=3)
        stream = export_conversation(one, user_id=alice.id, conversation_id=conv.id)
        await anext(stream)
        await stream.aclose()
        async with one.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM pg_cursors WHERE name <> ''") == 0
    finally:
        await one.close()


async def test_import_keeping_ids_keeps_them_and_a_taken_id_writes_nothing(
    pool: Any, alice: User, bob: User
) -> None:
    conv = await seed(pool, alice, count=3)
    exported = await read_all(export_conversation(pool, user_id=alice.id, conversation_id=conv.id))
    before = await pool.fetchval("SELECT count(*) FROM messages")
    with pytest.raises(Conflict, match=str(conv.id)):
        await import_conversations(
            pool, user_id=bob.id, documents=read_documents(exported), keep_ids=True
        )
    assert await pool.fetchval("SELECT count(*) FROM messages") == before

    await conversations.delete_conversation(pool, user_id=alice.id, conversation_id=conv.id)
    result = await import_conversations(
        pool, user_id=alice.id, documents=read_documents(exported), keep_ids=True
    )
    assert result.conversations[0].id == conv.id
    again = await read_all(export_conversation(pool, user_id=alice.id, conversation_id=conv.id))
    ids = [m["id"] for m in json.loads(again)["messages"]]
    assert ids == [m["id"] for m in json.loads(exported)["messages"]]


async def test_import_of_ui_messages_is_one_conversation(pool: Any, alice: User) -> None:
    kept = str(new_id())
    ui = [
        {"id": "msg_abc123", "role": "user", "parts": [text("你好")]},
        {"id": kept, "role": "assistant", "parts": EVERY_PART, "metadata": {"m": 1}},
    ]
    result = await import_conversations(
        pool, user_id=alice.id, documents=read_documents(orjson.dumps(ui)), keep_ids=True
    )
    conv_id = result.conversations[0].id
    page = await messages.list_messages(pool, user_id=alice.id, conversation_id=conv_id)
    first, second = page.items
    assert first.metadata == {"uiMessageId": "msg_abc123"} and first.content == "你好"
    assert str(second.id) == kept and second.parts == EVERY_PART and second.metadata == {"m": 1}


@pytest.mark.parametrize(
    ("body", "error", "where"),
    [
        (b"", InvalidInput, "empty"),
        (b"42", InvalidInput, "conversation document"),
        (b'{"conversation": {}, "messages": [', MalformedImport, "not valid JSON"),
        (
            b'{"messages": [{"role": "user", "parts": []}, {"role": "x", "parts": []}]}',
            InvalidInput,
            "messages.1.role",
        ),
        (
            b'{"messages": [{"role": "user", "parts": [{"type": "text"}]}]}',
            InvalidInput,
            "messages.0.parts.0",
        ),
        (
            b'{"messages": [{"role": "user", "parts": [], "metadata": {"n": 1e400}}]}',
            InvalidInput,
            "messages.0.metadata: number out of range",
        ),
        (b'{"conversation": {"title": "a\\u0000"}}', InvalidInput, "NUL"),
        (
            b'{"messages": []}\n{"messages": [{"role": "user", "parts": [1]}]}',
            InvalidInput,
            "line 2: messages.0.parts.0",
        ),
        (b'{"messages": []}\n{"messages": ', MalformedImport, "line 2"),
        (
            b'[{"id": "a", "role": "user", "parts": []}, {"id": "b", "parts": []}]',
            InvalidInput,
            "message: 1.role",
        ),
        (b'{"messages": [], "extra": 1}', InvalidInput, "extra"),
    ],
)
def test_read_documents_names_what_is_wrong(
    body: bytes, error: type[Exception], where: str
) -> None:
    with pytest.raises(error, match=where.replace(".", r"\.")):
        read_documents(body)


def nested(depth: int) -> dict[str, Any]:
    """A JSON object ``depth`` levels deep (itself the first)."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize("kind", ["document", "ui"])
def test_read_documents_holds_every_part_and_metadata_to_the_appends_rules(kind: str) -> None:
    """All parts and metadata are checked (together, for speed): the depth limit at the same
    level as an append's, for the part or metadata anywhere in the import; a part rule broken
    late in the document is found, and named, though an earlier error is reported first."""

    def body(messages: list[dict[str, Any]]) -> bytes:
        if kind == "ui":
            return json.dumps([{"id": f"m{i}", **m} for i, m in enumerate(messages)]).encode()
        return json.dumps({"messages": messages}).encode()

    where = "message: " if kind == "ui" else "messages."
    fine = {"role": "user", "parts": [text("ok")]}
    deep_part = {"type": "data-x", "data": nested(4)}  # 5 levels
    at_limit = {"role": "user", "parts": [deep_part], "metadata": nested(5)}
    assert len(read_documents(body([fine, at_limit]), max_json_depth=5)[0].messages) == 2
    too_deep_part = {"role": "user", "parts": [text("a"), {"type": "data-x", "data": nested(5)}]}
    with pytest.raises(InvalidInput, match=rf"{where}2\.parts\.1: nested deeper than 5"):
        read_documents(body([fine, at_limit, too_deep_part]), max_json_depth=5)
    too_deep_metadata = {"role": "user", "parts": [], "metadata": nested(6)}
    with pytest.raises(InvalidInput, match=rf"{where}1\.metadata: nested deeper than 5"):
        read_documents(body([fine, too_deep_metadata]), max_json_depth=5)
    huge = {"role": "user", "parts": [], "metadata": {"n": 2**64}}
    with pytest.raises(InvalidInput, match=rf"{where}1\.metadata: integer out of range"):
        read_documents(body([fine, huge]))
    no_call_id = {"role": "assistant", "parts": [{"type": "tool-x", "state": "input-available"}]}
    with pytest.raises(InvalidInput, match=rf"{where}3\.parts\.0: .*'toolCallId'"):
        read_documents(body([fine, fine, fine, no_call_id]))
    # Both wrong: the first in document order is named, as the models alone name it.
    bad_role = {"role": "robot", "parts": []}
    with pytest.raises(InvalidInput, match=rf"{where}1\.parts\.0"):
        read_documents(body([fine, no_call_id, bad_role]))


async def test_bad_or_too_large_message_anywhere_writes_nothing(pool: Any, alice: User) -> None:
    good = {"role": "user", "parts": [text("ok")]}
    big = {"role": "user", "parts": [text("x" * 5000)]}
    body = b"\n".join(
        orjson.dumps({"conversation": {"title": f"t{i}"}, "messages": [good] * 3 + extra})
        for i, extra in enumerate([[], [], [big]])
    )
    documents = read_documents(body)
    with pytest.raises(TooLarge, match=r"document 3: messages\.3"):
        await import_conversations(pool, user_id=alice.id, documents=documents, max_bytes=4096)
    with pytest.raises(TooLarge, match=r"messages\.0"):
        await import_conversations(
            pool,
            user_id=alice.id,
            documents=[ConversationDocument.model_validate({"messages": [good]})],
            max_parts=0,
        )
    assert await pool.fetchval("SELECT count(*) FROM conversations") == 0
    result = await import_conversations(pool, user_id=alice.id, documents=documents)
    assert result.message_count == 10


async def test_import_a_thread_is_kept_only_with_ids(pool: Any, alice: User) -> None:
    conv = await conversations.insert_conversation(
        pool, user_id=alice.id, draft=ConversationDraft(thread_id="t-1")
    )
    exported = await read_all(export_conversation(pool, user_id=alice.id, conversation_id=conv.id))
    copy = await import_conversations(pool, user_id=alice.id, documents=read_documents(exported))
    got = await conversations.get_conversation(
        pool, user_id=alice.id, conversation_id=copy.conversations[0].id
    )
    assert got.thread_id is None
    await conversations.delete_conversation(pool, user_id=alice.id, conversation_id=conv.id)
    await conversations.insert_conversation(
        pool, user_id=alice.id, draft=ConversationDraft(thread_id="t-1")
    )
    with pytest.raises(Conflict, match="thread_id"):
        await import_conversations(
            pool, user_id=alice.id, documents=read_documents(exported), keep_ids=True
        )


async def test_messages_appended_after_an_import_continue_its_seqs(pool: Any, alice: User) -> None:
    body = orjson.dumps({"messages": [{"role": "user", "parts": [text(str(i))]} for i in range(3)]})
    result = await import_conversations(pool, user_id=alice.id, documents=read_documents(body))
    conv_id = result.conversations[0].id
    appended = await messages.insert_message(
        pool,
        user_id=alice.id,
        conversation_id=conv_id,
        draft=MessageDraft(role="user", parts=[text("3")]),
    )
    assert appended.message.seq == 4
    page = await messages.list_messages(pool, user_id=alice.id, conversation_id=conv_id)
    assert [m.content for m in page.items] == ["0", "1", "2", "3"]
    assert all(isinstance(m, Message) for m in page.items)


async def session_exercise(pool: Any, settings: Settings, run: SessionRun) -> None:
    """Export and import, for tests/test_session_state.py."""
    user = await run.one("make_user", lambda: make_user(pool))
    uid = user.id
    body = orjson.dumps(
        {"conversation": {"title": "x"}, "messages": [{"role": "user", "parts": [text("a")]}]}
    )
    result = await run.one(
        "import_conversations",
        lambda: usecase.import_conversations(pool, user_id=uid, documents=read_documents(body)),
    )
    cid = result.conversations[0].id
    await run(
        [
            (
                "export_conversation",
                lambda: read_all(
                    usecase.export_conversation(pool, user_id=uid, conversation_id=cid)
                ),
            ),
            (
                "export_conversation missing",
                lambda: read_all(
                    usecase.export_conversation(pool, user_id=uid, conversation_id=new_id())
                ),
            ),
            ("export_all", lambda: read_all(usecase.export_all(pool, user_id=uid))),
            (
                "import_conversations with a timeout",
                lambda: usecase.import_conversations(
                    pool, user_id=uid, documents=read_documents(body), timeout=60
                ),
            ),
            (
                "import_conversations taken id",
                lambda: usecase.import_conversations(
                    pool,
                    user_id=uid,
                    documents=[ConversationDocument.model_validate({"conversation": {"id": cid}})],
                    keep_ids=True,
                ),
            ),
            (
                "list_existing_conversation_ids",
                lambda: transfer.list_existing_conversation_ids(pool, ids=[cid]),
            ),
        ]
    )
    assert isinstance(pool, asyncpg.Pool)
