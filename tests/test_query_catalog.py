"""The named-query catalog against the migrated schema (sqlc's checks, run at test time)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import BaseModel

from dal.queries import QUERIES_DIR, Q, QueryFileError, load, parse_file
from dal.records.checkpoints import CheckpointRow, DeltaHistoryRow
from dal.records.conversations import Conversation
from dal.records.messages import Message
from dal.records.threads import CheckpointHead, CopyTarget, Thread
from dal.records.users import Token, User

ROOT = Path(__file__).resolve().parent.parent

# The record each row-returning query is mapped to (extra columns listed after it).
RECORD_OF: dict[str, tuple[type[BaseModel], tuple[str, ...]]] = {
    "insert_user": (User, ()),
    "get_user": (User, ()),
    "get_user_by_username": (User, ()),
    "update_user": (User, ()),
    "deactivate_user": (User, ()),
    "get_user_by_token": (User, ()),
    "insert_token": (Token, ()),
    "revoke_token": (Token, ()),
    "insert_conversation": (Conversation, ()),
    "get_conversation": (Conversation, ()),
    "list_conversations": (Conversation, ()),
    "list_conversations_before": (Conversation, ()),
    "update_conversation": (Conversation, ()),
    "insert_message": (Message, ("created",)),
    "get_message": (Message, ()),
    "list_messages_latest": (Message, ()),
    "list_messages_before": (Message, ()),
    "list_messages_after": (Message, ()),
    "update_message": (Message, ()),
    "get_checkpoint": (CheckpointRow, ()),
    "get_latest_checkpoint": (CheckpointRow, ()),
    "list_checkpoints": (CheckpointRow, ()),
    "list_checkpoints_before": (CheckpointRow, ()),
    "list_checkpoints_by_metadata": (CheckpointRow, ()),
    "find_checkpoints": (CheckpointRow, ()),
    "get_thread": (Thread, ()),
    "get_thread_locked": (Thread, ()),
    "list_threads": (Thread, ()),
    "list_threads_before": (Thread, ()),
    "upsert_thread_of_user": (Thread, ()),
    "get_latest_checkpoint_head": (CheckpointHead, ()),
    "insert_thread_copy": (CopyTarget, ()),
    "list_delta_channel_history": (DeltaHistoryRow, ()),
    "get_user_locked": (User, ()),
    "list_tokens": (Token, ()),
    "get_conversation_retried": (Conversation, ()),
    "list_checkpoints_of_thread": (CheckpointRow, ()),
    "list_checkpoints_of_thread_before": (CheckpointRow, ()),
    "list_checkpoints_by_metadata_before": (CheckpointRow, ()),
    "find_checkpoints_of_thread": (CheckpointRow, ()),
    "find_checkpoints_by_metadata": (CheckpointRow, ()),
}
VERB_PREFIXES = (
    "get_",
    "list_",
    "find_",
    "count_",
    "exists_",
    "insert_",
    "upsert_",
    "update_",
    "delete_",
    "copy_",
    "deactivate_",
    "revoke_",
)


@pytest.fixture
async def conn(database_url: str) -> Any:
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


async def test_every_named_query_prepares_with_its_declared_parameter_types(conn: Any) -> None:
    assert len(Q) >= 20
    for query in Q.values():
        stmt = await conn.prepare(query.sql)
        declared = [p.pg_type for p in query.params]
        actual = [t.name for t in stmt.get_parameters()]
        assert actual == declared, query.source


async def test_every_row_query_returns_exactly_its_record_fields(conn: Any) -> None:
    for name, (record, extra) in RECORD_OF.items():
        stmt = await conn.prepare(Q[name].sql)
        columns = [a.name for a in stmt.get_attributes()]
        assert sorted(columns) == sorted([*record.model_fields, *extra]), Q[name].source


def test_every_query_name_starts_with_a_verb_that_says_what_comes_back() -> None:
    for query in Q.values():
        assert query.name.startswith(VERB_PREFIXES), query.source


def test_every_named_query_is_used_by_a_gateway() -> None:
    code = "\n".join(p.read_text() for p in (ROOT / "dal").rglob("*.py"))
    used = set(re.findall(r'Q\["([a-z0-9_]+)"\]', code))
    assert set(Q) - used == set(), "named queries no gateway runs"
    assert used - set(Q) == set(), "gateways run queries that do not exist"


def test_no_sql_in_python_outside_queries() -> None:
    pattern = re.compile(
        r"""["']\s*(select|insert\s+into|update\s+[a-z_]+\s+set|delete\s+from|create\s+"""
        r"""(table|index)|alter\s+table|drop\s+table|with\s+[a-z_]+\s+as\s*\()\b""",
        re.IGNORECASE,
    )
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("dal", "app")
        for path in (ROOT / folder).rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if pattern.search(line)
    ]
    assert offenders == []


async def test_every_uses_line_names_an_index_of_the_schema(conn: Any) -> None:
    indexes = {r["indexname"] for r in await conn.fetch("SELECT indexname FROM pg_indexes")}
    for query in Q.values():
        for index in query.uses:
            assert index in indexes, f"{query.source}: unknown index {index}"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.sql"
    path.write_text(text)
    return path


def test_loader_duplicate_name_fails_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("-- name: get_x\n-- $1 id int4\nSELECT $1;\n")
    (tmp_path / "b.sql").write_text("\n-- name: get_x\nSELECT 1;\n")
    with pytest.raises(QueryFileError, match=r"queries/b\.sql:2: duplicate query name 'get_x'"):
        load(tmp_path)


def test_loader_empty_name_fails(tmp_path: Path) -> None:
    with pytest.raises(QueryFileError, match=r"bad\.sql:1: invalid or empty query name"):
        parse_file(_write(tmp_path, "-- name:\nSELECT 1;\n"))


def test_loader_block_without_statement_fails(tmp_path: Path) -> None:
    with pytest.raises(QueryFileError, match="has no statement"):
        parse_file(
            _write(tmp_path, "-- name: get_x\n-- does nothing\n\n-- name: get_y\nSELECT 1;\n")
        )


def test_loader_undeclared_parameter_fails(tmp_path: Path) -> None:
    with pytest.raises(QueryFileError, match=r"uses \$\[1, 2\] but declares \$\[1\]"):
        parse_file(_write(tmp_path, "-- name: get_x\n-- $1 a int4\nSELECT $1, $2;\n"))


def test_loader_sql_outside_a_block_fails(tmp_path: Path) -> None:
    with pytest.raises(QueryFileError, match=r"bad\.sql:1: SQL outside a named block"):
        parse_file(_write(tmp_path, "SELECT 1;\n-- name: get_x\nSELECT 1;\n"))


def test_loader_reads_doc_params_and_uses_lines() -> None:
    query = Q["list_messages_after"]
    assert query.uses == ("messages_pkey",)
    assert [(p.position, p.name, p.pg_type) for p in query.params] == [
        (1, "user_id", "uuid"),
        (2, "conversation_id", "uuid"),
        (3, "after_seq", "int8"),
        (4, "page_size", "int8"),
        (5, "max_bytes", "int8"),
    ]
    assert query.doc.startswith("The page of messages just after seq $3")
    assert query.source.startswith("queries/messages.sql:")
    assert QUERIES_DIR == ROOT / "queries"
