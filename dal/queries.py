"""The named-query catalog: every SQL statement Mnemo runs, loaded once from ``queries/*.sql``.

A block looks like::

    -- name: get_conversation
    -- The caller's conversation by id.
    -- uses: conversations_pkey
    -- $1 user_id uuid
    -- $2 conversation_id uuid
    SELECT ...;

The loader is strict: a duplicate or empty name, a block without a statement, or ``$n`` lines
that do not match the ``$n`` placeholders of the statement fail at import with ``file:line``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

QUERIES_DIR = Path(__file__).resolve().parent.parent / "queries"

_NAME = re.compile(r"^--\s*name:\s*(?P<name>\S*)\s*$")
_PARAM = re.compile(
    r"^--\s*\$(?P<n>\d+)\s+(?P<name>[a-z_][a-z0-9_]*)\s+(?P<type>[a-z0-9_\[\]]+)(?:\s|$)"
)
_USES = re.compile(r"^--\s*uses:\s*(?P<what>.+)$")
_VALID_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PLACEHOLDER = re.compile(r"\$(\d+)")


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
    sql: str  # sent to asyncpg unchanged
    params: tuple[Param, ...]
    doc: str
    uses: tuple[str, ...]  # index names from "-- uses:" lines
    source: str  # "queries/messages.sql:42"

    def __str__(self) -> str:
        return f"{self.name} ({self.source})"


def _strip_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


def _finish(
    name: str, source: str, doc: list[str], params: list[Param], uses: list[str], body: list[str]
) -> Query:
    sql = "\n".join(body).strip()
    if not sql:
        raise QueryFileError(f"{source}: query {name!r} has no statement")
    positions = [p.position for p in params]
    if positions != list(range(1, len(params) + 1)):
        raise QueryFileError(f"{source}: query {name!r} declares parameters {positions}, not 1..n")
    used = {int(n) for n in _PLACEHOLDER.findall(_strip_comments(sql))}
    if used != set(positions):
        raise QueryFileError(
            f"{source}: query {name!r} uses ${sorted(used)} but declares ${sorted(positions)}"
        )
    return Query(
        name=name,
        sql=sql,
        params=tuple(params),
        doc=" ".join(doc).strip(),
        uses=tuple(uses),
        source=source,
    )


def parse_file(path: Path, *, label: str | None = None) -> list[Query]:
    """Parse one ``.sql`` file into its named queries."""
    label = label or f"queries/{path.name}"
    queries: list[Query] = []
    name: str | None = None
    source = ""
    doc: list[str] = []
    params: list[Param] = []
    uses: list[str] = []
    body: list[str] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        header = _NAME.match(line)
        if header:
            if name is not None:
                queries.append(_finish(name, source, doc, params, uses, body))
            name = header["name"]
            source = f"{label}:{lineno}"
            if not _VALID_NAME.match(name):
                raise QueryFileError(f"{source}: invalid or empty query name {name!r}")
            doc, params, uses, body = [], [], [], []
            continue
        if name is None:
            if line.strip() and not line.lstrip().startswith("--"):
                raise QueryFileError(f"{label}:{lineno}: SQL outside a named block")
            continue
        if not body and line.lstrip().startswith("--"):
            param, used = _PARAM.match(line), _USES.match(line)
            if param:
                params.append(Param(int(param["n"]), param["name"], param["type"]))
            elif used:
                names = re.sub(r"\([^)]*\)", "", used["what"])
                uses.extend(u.strip() for u in names.split(",") if u.strip())
            else:
                doc.append(line.lstrip("- ").rstrip())
            continue
        if body or line.strip():
            body.append(line)
    if name is not None:
        queries.append(_finish(name, source, doc, params, uses, body))
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
