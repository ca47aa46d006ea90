"""HTTP for files: the name in an upload's ``Content-Disposition``, the one a download sends
(RFC 6266), byte ranges (RFC 9110 section 14) with their multipart/byteranges body, and
entity-tag conditions (``If-None-Match``, ``If-Range``). Pure functions of header values:
they never raise on what a client sends."""

from __future__ import annotations

import re
import secrets
import string
import unicodedata
from collections.abc import Sequence
from itertools import pairwise
from typing import Final, Literal, NamedTuple, TypeAlias
from urllib.parse import quote, unquote_to_bytes

# --- Content-Disposition ---------------------------------------------------------------------

_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)
# RFC 8187's attr-char: what filename*= carries unencoded.
_ATTR_SAFE = "!#$&+-.^_`|~"
_EXT_VALUE = re.compile(r"([A-Za-z0-9!#$%&+\-^_`{}~]+)'[A-Za-z0-9-]*'(.*)", re.DOTALL)


def _token(text: str, start: int) -> int:
    """The end of the token at ``start`` (``start`` itself when there is none)."""
    end = start
    while end < len(text) and text[end] in _TOKEN_CHARS:
        end += 1
    return end


def _skip_spaces(text: str, start: int) -> int:
    while start < len(text) and text[start] in " \t":
        start += 1
    return start


def _quoted(text: str, start: int) -> tuple[str, int] | None:
    """The value of the quoted-string at ``start`` (its opening quote) and the index after
    its closing quote; None if it is not closed."""
    chars: list[str] = []
    at = start + 1
    while at < len(text):
        char = text[at]
        if char == '"':
            return "".join(chars), at + 1
        if char == "\\" and at + 1 < len(text):
            at += 1
            char = text[at]
        chars.append(char)
        at += 1
    return None


def _parameters(header: str) -> dict[str, str]:
    """A Content-Disposition's parameters (names in lower case, the first of each kept), up
    to the first that cannot be parsed. The disposition type before them is optional."""
    found: dict[str, str] = {}
    at = _skip_spaces(header, 0)
    end = _token(header, at)
    after = _skip_spaces(header, end)
    if after < len(header) and header[after] == "=":  # no type: the header is a parameter
        header, end = "; " + header[at:], 0
    at = end
    while True:
        at = _skip_spaces(header, at)
        if at >= len(header) or header[at] != ";":
            return found
        at = _skip_spaces(header, at + 1)
        end = _token(header, at)
        name = header[at:end].lower()
        at = _skip_spaces(header, end)
        if not name or at >= len(header) or header[at] != "=":
            if name and (at >= len(header) or header[at] == ";"):
                continue  # a valueless parameter: skipped
            return found
        at = _skip_spaces(header, at + 1)
        if at < len(header) and header[at] == '"':
            quoted = _quoted(header, at)
            if quoted is None:
                return found
            value, at = quoted
        else:
            end = at
            while end < len(header) and header[end] != ";":
                end += 1
            value, at = header[at:end].strip(), end
        found.setdefault(name, value)


def _utf8_from_latin1(text: str) -> str:
    """``text`` read again as UTF-8 when it is UTF-8 bytes decoded as Latin-1 (how Starlette
    decodes headers, and what browsers put in a multipart part's filename)."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return text


def _extended(value: str) -> str | None:
    """An RFC 8187 ext-value (``UTF-8''%E6%8A%A5...``) decoded; None if it is not one, names
    another charset than UTF-8 or ISO-8859-1, or does not decode."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]  # not allowed, but sent by some clients
    matched = _EXT_VALUE.fullmatch(value)
    if matched is None:
        return None
    charset = matched[1].lower()
    if charset not in ("utf-8", "iso-8859-1"):
        return None
    try:
        return unquote_to_bytes(matched[2]).decode(charset)
    except (UnicodeError, ValueError):
        return None


def parse_content_disposition_filename(header: str | None) -> str | None:
    """The file name a request's ``Content-Disposition`` (or a multipart part's) gives:
    ``filename*=`` (RFC 8187: ``UTF-8''%E6%8A%A5%E5%91%8A.pdf``, or ISO-8859-1) when present
    and decodable, else ``filename=`` (token or quoted-string with backslash escapes; raw
    UTF-8 bytes in it, arriving as Latin-1 text, recovered). As sent, directories and all:
    ``dal.media.safe_filename`` makes it a name to store. None when there is none or the
    header cannot be read; never raises."""
    if not header:
        return None
    try:
        parameters = _parameters(header)
        extended = parameters.get("filename*")
        name = _extended(extended) if extended is not None else None
        if not name and "filename" in parameters:
            name = _utf8_from_latin1(parameters["filename"])
    except Exception:  # garbage of a kind not foreseen: no name, never a 500
        return None
    return name or None


def _ascii_fallback(name: str) -> str:
    """``name`` for ``filename=``: accents dropped; other non-ASCII characters, quotes,
    backslashes, percent signs (which some browsers decode), semicolons and commas (which
    naive parsers split on) replaced by ``_``."""
    chars = []
    for char in unicodedata.normalize("NFKD", name):
        if unicodedata.combining(char):
            continue
        chars.append(char if " " <= char <= "~" and char not in '"\\%;,' else "_")
    return "".join(chars)


def content_disposition(name: str, *, inline: bool) -> str:
    """A ``Content-Disposition`` value (RFC 6266) for a download named ``name``: ``inline``
    or ``attachment``, ``filename="<ASCII fallback>"``, and ``filename*=UTF-8''<percent-
    encoded>`` when the fallback is not the name (non-ASCII, ``"``, ``\\``, ``%``, ``;``, ``,``).
    Control characters are dropped from the name, so the value is printable ASCII: no header
    injection. An empty name becomes ``file``."""
    cleaned = "".join(
        char
        for char in name
        if unicodedata.category(char) not in ("Cc", "Cs", "Zl", "Zp") and char != "\ufeff"
    ).strip()
    cleaned = cleaned or "file"
    fallback = _ascii_fallback(cleaned)
    value = f'{"inline" if inline else "attachment"}; filename="{fallback}"'
    if fallback != cleaned:
        value += "; filename*=UTF-8''" + quote(cleaned, safe=_ATTR_SAFE)
    return value


# --- Range -----------------------------------------------------------------------------------

MAX_RANGES: Final = 16
"""More ranges than this in one request and the whole file is served (200) instead: with
overlapping ranges refused too, a response is never bigger than the file plus 16 part
headers (RFC 9110 section 15.3.7.2 allows ignoring such requests)."""

Unsatisfiable: TypeAlias = Literal["unsatisfiable"]
UNSATISFIABLE: Final[Unsatisfiable] = "unsatisfiable"

_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")
_MAX_DIGITS = 18  # a position with more is beyond any file: kept as this many nines


def _position(digits: str) -> int:
    return int(digits) if len(digits) <= _MAX_DIGITS else 10**_MAX_DIGITS - 1


def parse_range(header: str | None, size: int) -> list[tuple[int, int]] | None | Unsatisfiable:
    """The byte ranges a ``Range`` header asks of a file of ``size`` bytes, as inclusive
    ``(first, last)`` pairs clipped to the file, in the order asked:

    - ``bytes=a-b`` (a through b), ``bytes=a-`` (a to the end), ``bytes=-n`` (the last n),
      several separated by commas (with optional white space; empty elements ignored);
    - a range starting at or beyond the end, or a suffix of 0 bytes, is left out; when none
      is left, ``"unsatisfiable"`` (416 with ``Content-Range: bytes */size``); a file of 0
      bytes satisfies no range;
    - None (serve the whole file with 200, as RFC 9110 requires of a header it does not
      understand or ignores) when the header is absent, not in ``bytes`` (``items=0-1``),
      malformed (``bytes=abc``, ``bytes=5-2``, ``bytes=-``), asks for more than
      ``MAX_RANGES`` ranges, or asks for ranges that overlap once clipped.
    """
    if header is None:
        return None
    unit, equals, spec = header.strip().partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None
    elements = [element.strip() for element in spec.split(",")]
    elements = [element for element in elements if element]
    if not elements or len(elements) > MAX_RANGES:
        return None
    ranges: list[tuple[int, int]] = []
    for element in elements:
        matched = _RANGE_SPEC.fullmatch(element)
        if matched is None or not (matched[1] or matched[2]):
            return None
        if matched[1]:  # first-pos "-" [ last-pos ]
            first = _position(matched[1])
            last = _position(matched[2]) if matched[2] else size - 1
            if matched[2] and last < first:
                return None
            if first < size:
                ranges.append((first, min(last, size - 1)))
        else:  # "-" suffix-length
            length = _position(matched[2])
            if length > 0 and size > 0:
                ranges.append((max(size - length, 0), size - 1))
    if not ranges:
        return UNSATISFIABLE
    if any(later[0] <= earlier[1] for earlier, later in pairwise(sorted(ranges))):
        return None
    return ranges


def content_range(first: int, last: int, size: int) -> str:
    """The ``Content-Range`` of a 206: ``bytes first-last/size``."""
    return f"bytes {first}-{last}/{size}"


def unsatisfied_range(size: int) -> str:
    """The ``Content-Range`` of a 416: ``bytes */size``."""
    return f"bytes */{size}"


def byteranges_boundary() -> str:
    """A fresh boundary for a multipart/byteranges body: 32 random hex digits, which no part
    header contains and a file's bytes contain only by a 2^-128 chance."""
    return secrets.token_hex(16)


class ByteRanges(NamedTuple):
    """A multipart/byteranges body (RFC 9110 section 14.6) to stream: for each part its
    head (the boundary line, ``Content-Type``, ``Content-Range``, blank line) then the file's
    bytes ``first..last``; after the last part ``closing``. ``content_length`` is the whole
    body's, known before a byte is sent. The response's Content-Type is
    ``multipart/byteranges; boundary=<the boundary>``. A tuple: ``parts, closing, length =
    multipart_byteranges(...)``."""

    parts: tuple[tuple[bytes, int, int], ...]  # (head, first, last), last inclusive
    closing: bytes
    content_length: int


_SAFE_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+/[A-Za-z0-9!#$%&'*+.^_`|~-]+")


def multipart_byteranges(
    ranges: Sequence[tuple[int, int]], size: int, media_type: str, boundary: str | None = None
) -> ByteRanges:
    """The multipart/byteranges body of a 206 for several ``ranges`` (as ``parse_range``
    gives them) of a file of ``size`` bytes served as ``media_type`` (a bare
    ``type/subtype``; anything else is sent as application/octet-stream), delimited by
    ``boundary`` (``byteranges_boundary()`` unless given)."""
    boundary = boundary or byteranges_boundary()
    if _SAFE_MEDIA_TYPE.fullmatch(media_type) is None:
        media_type = "application/octet-stream"
    parts = []
    for index, (first, last) in enumerate(ranges):
        head = (
            ("" if index == 0 else "\r\n")
            + f"--{boundary}\r\nContent-Type: {media_type}\r\n"
            + f"Content-Range: {content_range(first, last, size)}\r\n\r\n"
        ).encode("ascii")
        parts.append((head, first, last))
    closing = f"\r\n--{boundary}--\r\n".encode("ascii")
    length = sum(len(head) + last - first + 1 for head, first, last in parts) + len(closing)
    return ByteRanges(parts=tuple(parts), closing=closing, content_length=length)


# --- entity tags -----------------------------------------------------------------------------


def _entity_tags(header: str) -> list[tuple[bool, str]] | None:
    """The entity-tags of an ``If-None-Match``/``If-Match`` list as (weak, opaque) pairs
    (an unquoted tag, which some clients send, read as its text); None for ``*``."""
    if header.strip() == "*":
        return None
    tags: list[tuple[bool, str]] = []
    at = 0
    while at < len(header):
        if header[at] in " \t,":
            at += 1
            continue
        weak = header.startswith("W/", at)
        if weak:
            at += 2
        if at < len(header) and header[at] == '"':
            end = header.find('"', at + 1)
            if end < 0:
                break  # unclosed: the rest is garbage
            tags.append((weak, header[at + 1 : end]))
            at = end + 1
        else:
            end = header.find(",", at)
            end = len(header) if end < 0 else end
            tags.append((weak, header[at:end].strip()))
            at = end
    return tags


def _opaque(etag: str) -> tuple[bool, str]:
    """Our own ETag (``"<hex>"``, or ``W/"<hex>"``; bare text is taken as quoted)."""
    weak = etag.startswith("W/")
    text = etag[2:] if weak else etag
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return weak, text


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` value matches the representation's ``etag`` (weak
    comparison, RFC 9110 section 13.1.2: ``W/`` ignored on both sides; ``*`` matches any; a
    comma-separated list matches if one member does): when True, a GET answers 304. None or
    an empty value → False."""
    if not if_none_match:
        return False
    tags = _entity_tags(if_none_match)
    if tags is None:
        return True
    _, mine = _opaque(etag)
    return any(opaque == mine for _, opaque in tags)


def if_range_allows(if_range: str | None, etag: str) -> bool:
    """Whether a request's ``Range`` may be honoured given its ``If-Range``: True without
    one; with one, only when it is exactly ``etag`` as a strong entity-tag (strong
    comparison, RFC 9110 section 13.1.5: a weak tag on either side never matches). A date
    (Mnemo sends no Last-Modified) or anything else → False: serve the whole file."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith("W/") or len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return False
    weak, mine = _opaque(etag)
    return not weak and value == f'"{mine}"'
