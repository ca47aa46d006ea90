"""Search over the caller's messages: what to look for (``MessageSearch``), what comes back
(``SearchHit``), the web-search syntax of ``q`` (``parse_query``) and the safe snippet
(``snippet``). README "Search" documents the syntax and the design.

A search hit carries its message, so these records import the messages aggregate's ``Message``
(the one exception to "records import only the base", declared in pyproject.toml).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Annotated, Self
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, StringConstraints, field_validator, model_validator

from dal.records.base import INPUT, CursorPage, Metadata, Row
from dal.records.messages import Message, Role

# The bounds of a query: its characters and its terms (words and phrases).
MAX_QUERY_CHARS = 500
MAX_QUERY_TERMS = 32
# Tool names, tool states and part types as they reach the index (facets are cut at 200
# characters there; longer values are refused here).
FacetValue = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]

# The characters indexed as CJK bigrams: mnemo_cjk_class() in the migration, the same ranges.
CJK = (
    "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f"
    "\U00020000-\U0002fa1f"
)
_CJK_RUN = re.compile(f"[{CJK}]+")
# Aliases of part_type for families of part types.
PART_FAMILIES = {"tool", "source", "data"}
# The separator of a (tool, state) facet: TOOLSTATE:<name><U+001F><state>.
_UNIT = "\x1f"


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """A web-search query as mnemo_search_query takes it: ``terms[i]`` a word or a phrase,
    ``negated[i]`` whether it is excluded, ``clauses[i]`` the number of its clause (the query
    is the AND of its clauses, each the OR of its terms)."""

    terms: tuple[str, ...]
    negated: tuple[bool, ...]
    clauses: tuple[int, ...]

    @property
    def positive(self) -> tuple[str, ...]:
        """The terms that are not excluded (what a snippet marks)."""
        return tuple(t for t, n in zip(self.terms, self.negated, strict=True) if not n)


def parse_query(q: str) -> ParsedQuery:
    """Read ``q`` as websearch_to_tsquery does: words are ANDed, ``"a phrase"`` keeps its words
    together and in order, ``-word`` or ``-"a phrase"`` excludes, ``OR`` between two terms
    accepts either. ValueError (naming what is wrong) for a query over the bounds, with no
    term, or with exclusions only."""
    if len(q) > MAX_QUERY_CHARS:
        raise ValueError(f"at most {MAX_QUERY_CHARS} characters")
    if "\x00" in q:
        raise ValueError("may not contain the NUL character")
    literals: list[tuple[str, bool, bool]] = []  # (text, negated, joined to the previous by OR)
    pending_or = False
    i, n = 0, len(q)
    while i < n:
        if q[i].isspace():
            i += 1
            continue
        negated = q[i] == "-" and i + 1 < n and not q[i + 1].isspace()
        if negated:
            i += 1
        if q[i] == '"':
            end = q.find('"', i + 1)
            end = n if end < 0 else end
            text, i = q[i + 1 : end], end + 1
        else:
            start = i
            while i < n and not q[i].isspace() and q[i] != '"':
                i += 1
            text = q[start:i]
            if not negated and text.lower() == "or":
                pending_or = bool(literals)
                continue
        if not text.strip() or not any(c.isalnum() for c in text):
            pending_or = False
            continue
        literals.append((text, negated, pending_or))
        pending_or = False
    if not literals:
        raise ValueError("give at least one word to look for")
    if len(literals) > MAX_QUERY_TERMS:
        raise ValueError(f"at most {MAX_QUERY_TERMS} words and phrases")
    clauses: list[int] = []
    for _, _, joined in literals:
        clauses.append(clauses[-1] if joined and clauses else len(set(clauses)))
    return ParsedQuery(
        terms=tuple(t for t, _, _ in literals),
        negated=tuple(neg for _, neg, _ in literals),
        clauses=tuple(clauses),
    )


class MessageSearch(BaseModel):
    """What to look for in the caller's messages; every field narrows the search (AND).

    ``q``: words in the web-search syntax (``parse_query``); ``conversation_id``: one
    conversation; ``role``; ``tool``: messages with a call of this tool (a ``tool-<name>``
    part or a ``dynamic-tool`` part with this ``toolName``); ``tool_state``: with a tool part in
    this state (``output-error``...; with ``tool``: that tool's part in that state);
    ``part_type``: with a part of this type (``file``, ``reasoning``, ``source-url``...), or of
    a family (``tool``, ``source``, ``data``); ``metadata``: whose metadata contains this
    object; ``since`` (inclusive) / ``until`` (exclusive): created in that range.
    """

    model_config = INPUT
    q: str | None = None
    conversation_id: UUID | None = None
    role: Role | None = None
    tool: FacetValue | None = None
    tool_state: FacetValue | None = None
    part_type: FacetValue | None = None
    metadata: Metadata | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None

    @field_validator("q")
    @classmethod
    def _q_parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_query(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be before until")
        if (
            self.q is not None
            and not any(not neg for neg in parse_query(self.q).negated)
            and not self.facets()
        ):
            raise ValueError(
                "q: give at least one word that is not excluded (or a role, tool, tool_state "
                "or part_type filter to exclude from)"
            )
        return self

    def query(self) -> ParsedQuery | None:
        """``q`` parsed (None without ``q``)."""
        return None if self.q is None else parse_query(self.q)

    def facets(self) -> list[str]:
        """The facet lexemes of the filters (mnemo_message_facets in the migration)."""
        found: list[str] = []
        if self.role is not None:
            found.append(f"ROLE:{self.role}")
        if self.part_type is not None:
            found.append(f"PART:{self.part_type}")
        if self.tool is not None and self.tool_state is not None:
            found.append(f"TOOLSTATE:{self.tool}{_UNIT}{self.tool_state}")
        elif self.tool is not None:
            found.append(f"TOOL:{self.tool}")
        elif self.tool_state is not None:
            found.append(f"STATE:{self.tool_state}")
        return found


class SearchHit(Row):
    """A message found, with its conversation's title, a snippet and its rank.

    ``snippet``: up to about 200 characters of the message's text around its first hit, HTML-
    escaped, the hits wrapped in ``<mark>`` and ``</mark>``: the only markup in it is those
    tags, whatever the message holds, so it can be shown as HTML as it is (or the tags
    stripped for plain text). ``rank``: ts_rank_cd of the text query (0 without ``q``).
    """

    conversation_id: UUID
    conversation_title: str
    message: Message
    snippet: str
    rank: float


class SearchPage(CursorPage[SearchHit]):
    """Hits best first (rank, then newest); pass ``next_cursor`` back for the next page."""


# --- snippets ---------------------------------------------------------------------------------

SNIPPET_CHARS = 200
# How far into a message a snippet looks for a hit: the indexed part (mnemo_text_vector).
SNIPPET_SCAN_CHARS = 50_000
_WORD = re.compile(r"[^\W_]+")
MARK, UNMARK = "<mark>", "</mark>"


def _stem_matches(word: str, stems: frozenset[str], words: frozenset[str]) -> bool:
    """Whether a word of the text is one the query looked for: the same word, or one whose
    English stem is a stem of the query (Snowball's stems are the word's beginning, with a
    final y turned to i; a stem that leaves more than four letters is not taken as a match)."""
    lower = word.lower()
    if lower in words or lower in stems:
        return True
    for cut in range(len(lower) - 1, max(len(lower) - 5, 1), -1):
        head = lower[:cut]
        if head in stems or (head + "i" in stems and lower[cut : cut + 1] == "y"):
            return True
    return False


def _hits(text: str, query: ParsedQuery | None, stems: frozenset[str]) -> list[tuple[int, int]]:
    """The (start, end) of the hits in ``text`` that a snippet can show, in order, not
    overlapping: the first one and those less than a snippet's length after it (so a long
    message is read only as far as its first hit, plus a snippet)."""
    if query is None:
        return []
    runs: set[str] = set()
    words: set[str] = set()
    for term in query.positive:
        runs.update(_CJK_RUN.findall(term))
        words.update(w.lower() for w in _WORD.findall(_CJK_RUN.sub(" ", term)))
    frozen = frozenset(words)
    # CJK runs blanked out character for character: the offsets stay the text's.
    latin = _CJK_RUN.sub(lambda m: " " * len(m.group()), text) if words or stems else ""
    first = min((at for run in runs if (at := text.find(run)) >= 0), default=len(text))
    for match in _WORD.finditer(latin, 0, first):
        if _stem_matches(match.group(), stems, frozen):
            first = match.start()
            break
    bound = first + SNIPPET_CHARS
    found: list[tuple[int, int]] = []
    for run in runs:
        at = text.find(run, first)
        while 0 <= at < bound:
            found.append((at, at + len(run)))
            at = text.find(run, at + len(run))
    for match in _WORD.finditer(latin, first, min(len(latin), bound + 100)):
        if match.start() >= bound:
            break
        if _stem_matches(match.group(), stems, frozen):
            found.append(match.span())
    found.sort()
    merged: list[tuple[int, int]] = []
    for start, end in found:
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def snippet(content: str, query: ParsedQuery | None, stems: frozenset[str] = frozenset()) -> str:
    """The snippet of a hit (see ``SearchHit``): the text around the first hit of ``query``
    (the beginning without one), HTML-escaped, hits marked. ``stems``: the English stems of the
    query's words, as PostgreSQL made them."""
    text = content[:SNIPPET_SCAN_CHARS]
    hits = _hits(text, query, stems)
    start = 0
    if hits and hits[0][0] > SNIPPET_CHARS // 3:
        start = hits[0][0] - SNIPPET_CHARS // 3
        space = text.rfind(" ", start - 20, start)
        start = space + 1 if space >= 0 else start
    end = min(len(content), start + SNIPPET_CHARS)
    if end < len(content):
        space = text.rfind(" ", end - 20, end)
        end = space if space > start else end
    out = ["…" if start > 0 else ""]
    at = start
    for hit_start, hit_end in hits:
        if hit_end <= start:
            continue
        if hit_start >= end:
            break
        hit_start, hit_end = max(hit_start, start), min(hit_end, end)
        out += [html.escape(text[at:hit_start]), MARK, html.escape(text[hit_start:hit_end]), UNMARK]
        at = hit_end
    out.append(html.escape(content[at:end]))
    if end < len(content):
        out.append("…")
    return "".join(out)
