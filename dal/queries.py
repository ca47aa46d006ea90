"""The named-query catalog: every SQL statement Mnemo runs, loaded once from ``queries/*.sql``.

A block looks like::

    -- name: get_conversation
    -- The caller's conversation by id.
    -- returns: Conversation
    -- uses: conversations_pkey
    -- $1 user_id uuid
    -- $2 conversation_id uuid
    SELECT ...;

``-- returns:`` says what each row of the statement is, and every query has one:

- ``-- returns: Message`` -- rows of a record of ``dal/records/`` (the class the gateway maps
  them to): the columns are exactly its fields;
- ``-- returns: Message + created`` -- that record's fields and these extra columns;
- ``-- returns: columns thread_id`` -- rows no record maps, with exactly these columns (the
  gateway reads them by name);
- ``-- returns: value`` -- one column (the gateway reads the first value: a count, an id);
- ``-- returns: nothing`` -- no column.

The catalog test prepares each query against the migrated schema and checks its columns
against this line.

A SQL fragment that several queries of one file share is written once, as a block of its
own, and included where it goes with ``{{name}}`` alone on its line (``{{name}};`` if the
statement ends there); the fragment is indented like the placeholder::

    -- fragment: checkpoint_tuple
    -- What the fragment reads and returns.
    SELECT ...

The SQL sent to asyncpg is the expanded text. A fragment belongs to its file, has no
parameters (``$n`` stay visible in each query) and includes no other fragment.

The loader is strict: a duplicate or empty name, a block without a statement, a missing or
malformed ``-- returns:`` line, ``$n`` lines that do not match the ``$n`` placeholders of the
statement, an unknown or unused fragment, a fragment with parameters or one that includes
another fail at import with ``file:line``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

QUERIES_DIR = Path(__file__).resolve().parent.parent / "queries"

_BLOCK = re.compile(r"^--\s*(?P<kind>name|fragment):\s*(?P<name>\S*)\s*$")
_PARAM = re.compile(
    r"^--\s*\$(?P<n>\d+)\s+(?P<name>[a-z_][a-z0-9_]*)\s+(?P<type>[a-z0-9_\[\]]+)(?:\s|$)"
)
_USES = re.compile(r"^--\s*uses:\s*(?P<what>.+)$")
_RETURNS_LINE = re.compile(r"^--\s*returns:(?P<what>.*)$")
_COLUMNS = r"[a-z_][a-z0-9_]*(?:\s*,\s*[a-z_][a-z0-9_]*)*"
_RETURNS = re.compile(
    r"^(?:(?P<shape>value|nothing)"
    rf"|columns\s+(?P<columns>{_COLUMNS})"
    rf"|(?P<record>[A-Z][A-Za-z0-9]*)(?:\s*\+\s*(?P<extra>{_COLUMNS}))?)$"
)
_VALID_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PLACEHOLDER = re.compile(r"\$(\d+)")
_INCLUDE = re.compile(r"\{\{\s*(?P<name>[^}\s]*)\s*\}\}")
_INCLUDE_LINE = re.compile(
    r"^(?P<indent>\s*)\{\{\s*(?P<name>[a-z][a-z0-9_]*)\s*\}\}(?P<end>;?)\s*$"
)

# What a "-- returns:" line says when the rows are no record.
VALUE, NOTHING, COLUMNS = "value", "nothing", "columns"


class QueryFileError(Exception):
    """A ``queries/*.sql`` file is malformed; the message starts with ``file:line``."""


@dataclass(frozen=True, slots=True)
class Param:
    position: int
    name: str
    pg_type: str


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    sql: str  # sent to asyncpg unchanged: fragments already expanded
    params: tuple[Param, ...]
    doc: str
    uses: tuple[str, ...]  # index names from "-- uses:" lines
    source: str  # "queries/messages.sql:42"
    # "-- returns:": a record's class name, or VALUE, NOTHING or COLUMNS.
    returns: str
    # The columns besides the record's fields ("Message + created"), or all of them (COLUMNS).
    columns: tuple[str, ...] = ()
    includes: tuple[str, ...] = ()  # the fragments expanded into sql

    def __str__(self) -> str:
        return f"{self.name} ({self.source})"


@dataclass(slots=True)
class _Block:
    kind: str  # "name" or "fragment"
    name: str
    source: str
    doc: list[str]
    params: list[Param]
    uses: list[str]
    returns: list[str]
    body: list[tuple[int, str]]  # (line number, text)


def _strip_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


def _split_columns(text: str | None) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",")) if text else ()


def _returns(block: _Block) -> tuple[str, tuple[str, ...]]:
    what = f"query {block.name!r}"
    if not block.returns:
        raise QueryFileError(f"{block.source}: {what} has no '-- returns:' line")
    if len(block.returns) > 1:
        raise QueryFileError(f"{block.source}: {what} has more than one '-- returns:' line")
    match = _RETURNS.match(block.returns[0])
    if match is None:
        raise QueryFileError(
            f"{block.source}: {what} returns {block.returns[0]!r}: not a record class name "
            "(optionally '+ extra, columns'), 'columns a, b', 'value' or 'nothing'"
        )
    if match["shape"]:
        return match["shape"], ()
    if match["columns"]:
        return COLUMNS, _split_columns(match["columns"])
    return match["record"], _split_columns(match["extra"])


def _expand(block: _Block, fragments: dict[str, _Block], label: str) -> tuple[str, list[str]]:
    """The block's statement with its fragments expanded, and which ones."""
    lines: list[str] = []
    included: list[str] = []
    for lineno, line in block.body:
        whole = _INCLUDE_LINE.match(line)
        if whole is None:
            if _INCLUDE.search(line):
                raise QueryFileError(
                    f"{label}:{lineno}: a fragment is included alone on its line, as {{{{name}}}}"
                )
            lines.append(line)
            continue
        name = whole["name"]
        fragment = fragments.get(name)
        if fragment is None:
            raise QueryFileError(f"{label}:{lineno}: unknown fragment {name!r}")
        indent = whole["indent"]
        lines.extend(indent + text if text.strip() else "" for _, text in fragment.body)
        lines[-1] += whole["end"]
        included.append(name)
    return "\n".join(lines).strip(), included


def _query(block: _Block, fragments: dict[str, _Block], label: str) -> Query:
    name, source = block.name, block.source
    sql, included = _expand(block, fragments, label)
    if not sql:
        raise QueryFileError(f"{source}: query {name!r} has no statement")
    returns, columns = _returns(block)
    positions = [p.position for p in block.params]
    if positions != list(range(1, len(block.params) + 1)):
        raise QueryFileError(f"{source}: query {name!r} declares parameters {positions}, not 1..n")
    used = {int(n) for n in _PLACEHOLDER.findall(_strip_comments(sql))}
    if used != set(positions):
        raise QueryFileError(
            f"{source}: query {name!r} uses ${sorted(used)} but declares ${sorted(positions)}"
        )
    return Query(
        name=name,
        sql=sql,
        params=tuple(block.params),
        doc=" ".join(block.doc).strip(),
        uses=tuple(block.uses),
        source=source,
        returns=returns,
        columns=columns,
        includes=tuple(dict.fromkeys(included)),
    )


def _check_fragment(block: _Block) -> None:
    what = f"{block.source}: fragment {block.name!r}"
    if not any(text.strip() for _, text in block.body):
        raise QueryFileError(f"{what} has no SQL")
    if block.params or block.returns or block.uses:
        raise QueryFileError(
            f"{what} declares parameters, returns or uses: those belong to each query"
        )
    for lineno, text in block.body:
        source = block.source.rsplit(":", 1)[0] + f":{lineno}"
        if _PLACEHOLDER.search(_strip_comments(text)):
            raise QueryFileError(
                f"{source}: fragment {block.name!r} has a parameter: each query that "
                "includes it passes its own (a column of the relation it reads)"
            )
        if _INCLUDE.search(text):
            raise QueryFileError(f"{source}: fragment {block.name!r} includes a fragment")


def parse_file(path: Path, *, label: str | None = None) -> list[Query]:
    """Parse one ``.sql`` file into its named queries, its fragments expanded."""
    label = label or f"queries/{path.name}"
    blocks: list[_Block] = []
    block: _Block | None = None
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        header = _BLOCK.match(line)
        if header:
            block = _Block(header["kind"], header["name"], f"{label}:{lineno}", [], [], [], [], [])
            if not _VALID_NAME.match(block.name):
                what = "query" if block.kind == "name" else "fragment"
                raise QueryFileError(f"{block.source}: invalid or empty {what} name {block.name!r}")
            blocks.append(block)
            continue
        if block is None:
            if line.strip() and not line.lstrip().startswith("--"):
                raise QueryFileError(f"{label}:{lineno}: SQL outside a named block")
            continue
        if not block.body and line.lstrip().startswith("--"):
            param, used = _PARAM.match(line), _USES.match(line)
            returns = _RETURNS_LINE.match(line)
            if param:
                block.params.append(Param(int(param["n"]), param["name"], param["type"]))
            elif used:
                names = re.sub(r"\([^)]*\)", "", used["what"])
                block.uses.extend(u.strip() for u in names.split(",") if u.strip())
            elif returns:
                block.returns.append(returns["what"].strip())
            else:
                block.doc.append(line.lstrip("- ").rstrip())
            continue
        if block.body or line.strip():
            block.body.append((lineno, line))
    for b in blocks:
        # Comment lines after a statement introduce what follows (a section): not its SQL.
        while b.body and (not b.body[-1][1].strip() or b.body[-1][1].lstrip().startswith("--")):
            b.body.pop()
    fragments: dict[str, _Block] = {}
    for b in blocks:
        if b.kind != "fragment":
            continue
        if b.name in fragments:
            raise QueryFileError(
                f"{b.source}: duplicate fragment name {b.name!r} "
                f"(first at {fragments[b.name].source})"
            )
        _check_fragment(b)
        fragments[b.name] = b
    queries = [_query(b, fragments, label) for b in blocks if b.kind == "name"]
    included = {name for q in queries for name in q.includes}
    for name, fragment in fragments.items():
        if name not in included:
            raise QueryFileError(f"{fragment.source}: fragment {name!r} is included nowhere")
    return queries


def load(directory: Path = QUERIES_DIR) -> Mapping[str, Query]:
    """Load every ``*.sql`` file of ``directory`` into one read-only mapping by name."""
    catalog: dict[str, Query] = {}
    for path in sorted(directory.glob("*.sql")):
        for query in parse_file(path):
            if query.name in catalog:
                raise QueryFileError(
                    f"{query.source}: duplicate query name {query.name!r} "
                    f"(first at {catalog[query.name].source})"
                )
            catalog[query.name] = query
    return MappingProxyType(catalog)


Q: Mapping[str, Query] = load()
