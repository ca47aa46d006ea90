"""The named-query catalog against the migrated schema (sqlc's checks, run at test time)."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import BaseModel

import dal.records
from dal.queries import COLUMNS, NOTHING, QUERIES_DIR, VALUE, Q, QueryFileError, load, parse_file

ROOT = Path(__file__).resolve().parent.parent


def records() -> dict[str, type[BaseModel]]:
    """Every model class defined in a module of the dal.records package, by name: a new
    aggregate's records module is found without a list to edit."""
    found: dict[str, type[BaseModel]] = {}
    for info in pkgutil.iter_modules(dal.records.__path__, "dal.records."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and issubclass(value, BaseModel)
                and value.__module__ == module.__name__
            ):
                assert name not in found, f"two records named {name}"
                found[name] = value
    return found


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
    "notify_",
    # an event log (queries/events.sql) is only ever appended to
    "append_",
    # a task's lifecycle (queries/tasks.sql): each returns the task it changed
    "cancel_",
    "claim_",
    "release_",
    "heartbeat_",
    "complete_",
    "fail_",
    # a refresh token (queries/identity.sql): used up and replaced in one statement
    "rotate_",
    # a session advisory lock (queries/retention.sql: the one retention runner), taken on a
    # connection outside the pool and given back
    "lock_",
    "unlock_",
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


async def test_every_query_returns_what_its_returns_line_declares(conn: Any) -> None:
    # Every query, with no list to keep: the columns of each, prepared against the migrated
    # schema, are those of the record its "-- returns:" line names (plus extras), the
    # columns it lists, one value, or none.
    known = records()
    for query in Q.values():
        stmt = await conn.prepare(query.sql)
        columns = [a.name for a in stmt.get_attributes()]
        if query.returns == NOTHING:
            assert columns == [], query.source
        elif query.returns == VALUE:
            assert len(columns) == 1, (query.source, columns)
        elif query.returns == COLUMNS:
            assert columns == list(query.columns), query.source
        else:
            assert query.returns in known, f"{query.source}: no record {query.returns}"
            record = known[query.returns]
            expected = [*record.model_fields, *query.columns]
            assert sorted(columns) == sorted(expected), query.source


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
    (tmp_path / "a.sql").write_text(
        "-- name: get_x\n-- returns: value\n-- $1 id int4\nSELECT $1;\n"
    )
    (tmp_path / "b.sql").write_text("\n-- name: get_x\n-- returns: value\nSELECT 1;\n")
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
        parse_file(
            _write(tmp_path, "-- name: get_x\n-- returns: value\n-- $1 a int4\nSELECT $1, $2;\n")
        )


def test_loader_sql_outside_a_block_fails(tmp_path: Path) -> None:
    with pytest.raises(QueryFileError, match=r"bad\.sql:1: SQL outside a named block"):
        parse_file(_write(tmp_path, "SELECT 1;\n-- name: get_x\nSELECT 1;\n"))


def test_loader_reads_doc_params_returns_and_uses_lines() -> None:
    query = Q["list_messages_after"]
    assert (query.returns, query.columns) == ("Message", ())
    assert (Q["insert_message"].returns, Q["insert_message"].columns) == (
        "Message",
        ("created", "problem", "tool_call_id", "attachment_id"),
    )
    assert (Q["get_server_state"].returns, Q["get_server_state"].columns) == (
        COLUMNS,
        ("migrations_table", "server_version"),
    )
    assert query.uses == ("messages_active_idx",)
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


@pytest.mark.parametrize(
    ("header", "error"),
    [
        ("", r"bad\.sql:1: query 'get_x' has no '-- returns:' line"),
        ("-- returns: rows\n", r"bad\.sql:1: query 'get_x' returns 'rows': not a record"),
        ("-- returns: Message +\n", r"returns 'Message \+': not a record"),
        ("-- returns: value\n-- returns: nothing\n", r"more than one '-- returns:' line"),
    ],
)
def test_loader_query_without_a_valid_returns_line_fails(
    tmp_path: Path, header: str, error: str
) -> None:
    with pytest.raises(QueryFileError, match=error):
        parse_file(_write(tmp_path, f"-- name: get_x\n{header}SELECT 1 AS x;\n"))


FRAGMENT = "-- fragment: pair\n-- Two columns.\nSELECT 1 AS a,\n       2 AS b\n\n"


def test_loader_expands_a_fragment_where_it_is_included(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        FRAGMENT + "-- name: get_x\n-- returns: columns a, b\n-- $1 n int4\n"
        "WITH t AS (SELECT $1)\n    {{ pair }}\n  FROM t;\n",
    )
    [query] = parse_file(path)
    assert query.sql == "WITH t AS (SELECT $1)\n    SELECT 1 AS a,\n           2 AS b\n  FROM t;"
    assert query.includes == ("pair",)
    assert [p.name for p in query.params] == ["n"]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "-- name: get_x\n-- returns: value\nSELECT 1\n{{nope}};\n",
            r"bad\.sql:4: unknown fragment 'nope'",
        ),
        (
            FRAGMENT + "-- name: get_x\n-- returns: value\nSELECT 1;\n",
            r"bad\.sql:1: fragment 'pair' is included nowhere",
        ),
        (
            "-- fragment: f\nSELECT $1\n-- name: get_x\n-- returns: value\n-- $1 n int4\n{{f}};\n",
            r"bad\.sql:2: fragment 'f' has a parameter",
        ),
        (
            "-- fragment: f\n-- $1 n int4\nSELECT 1\n-- name: get_x\n-- returns: value\n{{f}};\n",
            r"bad\.sql:1: fragment 'f' declares parameters, returns or uses",
        ),
        (
            "-- fragment: f\nSELECT 1 FROM\n{{f}}\n-- name: get_x\n-- returns: value\n{{f}};\n",
            r"bad\.sql:3: fragment 'f' includes a fragment",
        ),
        (
            FRAGMENT + FRAGMENT + "-- name: get_x\n-- returns: columns a, b\n{{pair}};\n",
            r"bad\.sql:6: duplicate fragment name 'pair' \(first at queries/bad\.sql:1\)",
        ),
        (
            FRAGMENT + "-- name: get_x\n-- returns: columns a, b\nSELECT {{pair}};\n",
            r"bad\.sql:8: a fragment is included alone on its line",
        ),
        (
            "-- fragment: f\n-- nothing here\n-- name: get_x\n-- returns: value\n{{f}};\n",
            r"bad\.sql:1: fragment 'f' has no SQL",
        ),
    ],
    ids=["unknown", "unused", "parameter", "header", "nested", "duplicate", "inline", "empty"],
)
def test_loader_fragment_misuse_fails_with_file_and_line(
    tmp_path: Path, text: str, error: str
) -> None:
    with pytest.raises(QueryFileError, match=error):
        parse_file(_write(tmp_path, text))


def test_a_fragment_stays_in_its_file(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text(
        FRAGMENT + "-- name: get_x\n-- returns: columns a, b\n{{pair}};\n"
    )
    (tmp_path / "b.sql").write_text("-- name: get_y\n-- returns: columns a, b\n{{pair}};\n")
    with pytest.raises(QueryFileError, match=r"queries/b\.sql:3: unknown fragment 'pair'"):
        load(tmp_path)


def test_loader_leaves_comments_after_a_statement_out_of_its_sql(tmp_path: Path) -> None:
    text = "-- name: get_x\n-- returns: value\nSELECT 1;\n\n-- --- a section\n\n-- name: get_y\n"
    [query, _] = parse_file(_write(tmp_path, text + "-- returns: value\nSELECT 2;\n"))
    assert query.sql == "SELECT 1;"


async def test_every_index_of_the_schema_is_there_for_a_named_query(conn: Any) -> None:
    """DESIGN.md: every index is there for a named query, which names it in a ``-- uses:``
    line (and a plan test shows the query uses it)."""
    indexes = {
        r["indexname"]
        for r in await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
            " AND tablename NOT LIKE '\\_yoyo%' AND tablename NOT LIKE 'yoyo%'"
        )
    }
    used = {index for query in Q.values() for index in query.uses}
    assert "messages_pkey" in indexes  # the catalog query sees the schema
    # The keys of the roles and rights tables (a few rows each, read whole by mnemo_may and
    # mnemo_role_rank) are there to keep them right: one row per role, rank and right.
    constraints = {"conversation_roles_pkey", "conversation_roles_rank_key"}
    constraints |= {"conversation_rights_pkey"}
    # The legal task transitions (six rows, read by the trigger mnemo_task_row).
    constraints |= {"task_transitions_pkey"}
    # One current refresh token per session (queries/identity.sql rotate_refresh_token).
    constraints |= {"refresh_tokens_one_current"}
    assert constraints <= indexes
    assert sorted(indexes - used - constraints) == []
