"""app/files.py: file names in and out of Content-Disposition, byte ranges and their
multipart body, entity-tag conditions (pure functions, no database)."""

from __future__ import annotations

import email.parser
import email.policy
import random

import pytest

from app.files import (
    MAX_RANGES,
    byteranges_boundary,
    content_disposition,
    content_range,
    etag_matches,
    if_range_allows,
    multipart_byteranges,
    parse_content_disposition_filename,
    parse_range,
    unsatisfied_range,
)


def starlette_header(value: str) -> str:
    """A header value as Starlette hands it over: its UTF-8 bytes decoded as Latin-1."""
    return value.encode("utf-8").decode("latin-1")


# --- parse_content_disposition_filename ------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('attachment; filename="report.pdf"', "report.pdf"),
        ("attachment; filename=report.pdf", "report.pdf"),
        ('inline; filename="a b.txt"', "a b.txt"),
        ('form-data; name="file"; filename="photo.jpg"', "photo.jpg"),
        ('ATTACHMENT; FILENAME="upper.txt"', "upper.txt"),
        ('attachment ; filename = "spaced.txt" ', "spaced.txt"),
        ('attachment; filename="semi;colon.txt"; size=3', "semi;colon.txt"),
        (r'attachment; filename="quote\"d.txt"', 'quote"d.txt'),
        (r'attachment; filename="back\\slash.txt"', "back\\slash.txt"),
        ('filename="no-type.txt"', "no-type.txt"),
        ("filename=no-type.txt", "no-type.txt"),
        ('attachment; filename="../../etc/passwd"', "../../etc/passwd"),  # safe_filename's job
        # RFC 8187, preferred over filename= wherever it is.
        ("attachment; filename*=UTF-8''%E6%8A%A5%E5%91%8A.pdf", "报告.pdf"),
        (
            "attachment; filename=\"fallback.pdf\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A.pdf",
            "报告.pdf",
        ),
        ("attachment; filename*=utf-8'zh'%E6%8A%A5%E5%91%8A.pdf; filename=\"x.pdf\"", "报告.pdf"),
        ("attachment; filename*=ISO-8859-1''caf%E9.txt", "café.txt"),
        ("attachment; filename*=\"UTF-8''quoted%20anyway.txt\"", "quoted anyway.txt"),
        # An undecodable or foreign filename*: filename= instead.
        ("attachment; filename*=UTF-8''%FF%FE.txt; filename=\"ok.txt\"", "ok.txt"),
        ("attachment; filename*=KOI8-R''%E1.txt; filename=\"ok.txt\"", "ok.txt"),
        ('attachment; filename*=garbage; filename="ok.txt"', "ok.txt"),
        ("attachment; filename*=UTF-8''%FF", None),
        ("attachment; filename=\"ok.txt\"; filename*=UTF-8''", "ok.txt"),
        # Raw UTF-8 in a quoted filename (browsers' multipart), as Starlette decodes it.
        (starlette_header('form-data; name="file"; filename="报告.pdf"'), "报告.pdf"),
        (starlette_header('attachment; filename="café.txt"'), "café.txt"),
        # Latin-1 that is no UTF-8: kept as it is.
        ('attachment; filename="caf\xe9.txt"', "café.txt"),
        # No name, or nothing readable.
        (None, None),
        ("", None),
        ("attachment", None),
        ("inline; name=x", None),
        ('attachment; filename=""', None),
        ('attachment; filename="unterminated', None),
        ("attachment; filename", None),
        ("attachment; =value", None),
        (";;;", None),
        ("=", None),
        ('"', None),
        ("\x00\x01\x02", None),
        ("attachment; filename*=", None),
    ],
)
def test_parse_content_disposition_filename(header: str | None, expected: str | None) -> None:
    assert parse_content_disposition_filename(header) == expected


def test_the_first_of_duplicate_parameters_counts() -> None:
    header = 'attachment; filename="first.txt"; filename="second.txt"'
    assert parse_content_disposition_filename(header) == "first.txt"


def test_parse_content_disposition_filename_never_raises() -> None:
    alphabet = ['"', "\\", ";", "=", "*", "'", "%", " ", "a", "é", "\x00", "filename", "UTF-8"]
    generator = random.Random(11)
    for _ in range(3000):
        header = "".join(generator.choice(alphabet) for _ in range(generator.randint(0, 30)))
        found = parse_content_disposition_filename(header)
        assert found is None or (isinstance(found, str) and found)


# --- content_disposition ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "inline", "expected"),
    [
        ("report.pdf", False, 'attachment; filename="report.pdf"'),
        ("photo.jpg", True, 'inline; filename="photo.jpg"'),
        ("a b.txt", False, 'attachment; filename="a b.txt"'),
        (
            "报告.pdf",
            False,
            "attachment; filename=\"__.pdf\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A.pdf",
        ),
        ("café.txt", True, "inline; filename=\"cafe.txt\"; filename*=UTF-8''caf%C3%A9.txt"),
        (
            'say "hi".txt',
            False,
            "attachment; filename=\"say _hi_.txt\"; filename*=UTF-8''say%20%22hi%22.txt",
        ),
        (
            "back\\slash.txt",
            False,
            "attachment; filename=\"back_slash.txt\"; filename*=UTF-8''back%5Cslash.txt",
        ),
        ("100%.txt", False, "attachment; filename=\"100_.txt\"; filename*=UTF-8''100%25.txt"),
        ("", False, 'attachment; filename="file"'),
        ("\r\n", False, 'attachment; filename="file"'),
    ],
)
def test_content_disposition(name: str, inline: bool, expected: str) -> None:
    assert content_disposition(name, inline=inline) == expected


@pytest.mark.parametrize(
    "name",
    [
        'a"\r\nSet-Cookie: x',
        'a"; filename="evil.html',
        "a\rb\nc\x00d\x1be\x7ff\x85g\u2028h\u2029i.txt",
        "报告\r\nSet-Cookie: x=1.pdf",
        "a, b; c=d.txt",
        "lone\ud800surrogate.txt",
        "\ufeffbom.txt",
    ],
)
def test_content_disposition_allows_no_header_injection(name: str) -> None:
    value = content_disposition(name, inline=False)

    assert value.isascii() and value.isprintable()  # no CR, LF, NUL or other control
    value.encode("latin-1")  # what Starlette sends headers as
    # One filename= quoted-string, then at most filename*: no parameter smuggled in.
    parameters = [part.strip().split("=", 1)[0] for part in value.split(";")[1:]]
    assert parameters in (["filename"], ["filename", "filename*"])
    quoted = value.split('filename="', 1)[1].split('"', 1)[0]
    assert '"' not in quoted and "\\" not in quoted
    assert "Set-Cookie:" not in value.split("; filename*=")[-1]  # encoded there


def test_content_disposition_round_trips_through_the_parser() -> None:
    for name in ["report.pdf", "报告.pdf", 'say "hi".txt', "100%.txt", "a;b=c.txt", "ünï cødé.bin"]:
        for inline in (False, True):
            assert (
                parse_content_disposition_filename(content_disposition(name, inline=inline)) == name
            )


def test_filename_star_is_read_by_the_standard_library() -> None:
    # email's RFC 2231 reader (which prefers filename= when both are there) decodes it.
    value = content_disposition("报告 (final), v2; ok.pdf", inline=False)
    extended = value.split("; filename*=")[1]
    message = email.parser.Parser(policy=email.policy.default).parsestr(
        f"Content-Disposition: attachment; filename*={extended}\n\n"
    )
    assert message.get_filename() == "报告 (final), v2; ok.pdf"


# --- parse_range -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 10, [(0, 0)]),
        ("bytes=0-9", 10, [(0, 9)]),
        ("bytes=-5", 10, [(5, 9)]),
        ("bytes=-10", 10, [(0, 9)]),
        ("bytes=-50", 10, [(0, 9)]),
        ("bytes=5-", 10, [(5, 9)]),
        ("bytes=9-", 10, [(9, 9)]),
        ("bytes=3-6", 10, [(3, 6)]),
        ("bytes=0-999999", 10, [(0, 9)]),
        ("bytes=0-" + "9" * 100, 10, [(0, 9)]),  # a huge number is no error
        ("Bytes=0-1", 10, [(0, 1)]),  # the unit is case-insensitive
        (" bytes=0-1 ", 10, [(0, 1)]),
        # Several, in the order asked.
        ("bytes=0-1,3-4", 10, [(0, 1), (3, 4)]),
        ("bytes=5-6, 0-1", 10, [(5, 6), (0, 1)]),
        ("bytes=0-1 , -2", 10, [(0, 1), (8, 9)]),
        ("bytes=0-4,5-9", 10, [(0, 4), (5, 9)]),  # adjacent, not overlapping
        ("bytes=,0-1,,", 10, [(0, 1)]),  # empty elements ignored
        # Unsatisfiable ones are left out; none left is a 416.
        ("bytes=0-1,20-30", 10, [(0, 1)]),
        ("bytes=20-30", 10, "unsatisfiable"),
        ("bytes=10-", 10, "unsatisfiable"),
        ("bytes=-0", 10, "unsatisfiable"),
        ("bytes=" + "9" * 100 + "-", 10, "unsatisfiable"),
        ("bytes=10-20,30-", 10, "unsatisfiable"),
        # An empty file satisfies no range.
        ("bytes=0-0", 0, "unsatisfiable"),
        ("bytes=0-", 0, "unsatisfiable"),
        ("bytes=-5", 0, "unsatisfiable"),
        # None: serve the whole file.
        (None, 10, None),
        ("", 10, None),
        ("bytes", 10, None),
        ("bytes=", 10, None),
        ("bytes=abc", 10, None),
        ("bytes=-", 10, None),
        ("bytes=1", 10, None),
        ("bytes=1-2-3", 10, None),
        ("bytes=--1", 10, None),
        ("bytes=+1-2", 10, None),
        ("bytes=0x1-2", 10, None),
        ("bytes=1 -2", 10, None),
        ("bytes=٣-٤", 10, None),  # Arabic-Indic digits are digits to int(), not to HTTP
        ("bytes=5-2", 10, None),
        ("bytes=0-1,5-2", 10, None),  # one invalid spec voids the header
        ("items=0-1", 10, None),
        ("bytes 0-1", 10, None),
        ("bytes=0-5,3-4", 10, None),  # overlapping
        ("bytes=0-,0-", 10, None),
        ("bytes=-5,5-", 10, None),
        ("bytes=0-2,-9", 10, None),  # overlap found once clipped
    ],
)
def test_parse_range(
    header: str | None, size: int, expected: list[tuple[int, int]] | str | None
) -> None:
    assert parse_range(header, size) == expected


def test_at_most_16_ranges() -> None:
    sixteen = "bytes=" + ",".join(f"{n * 2}-{n * 2}" for n in range(MAX_RANGES))
    seventeen = "bytes=" + ",".join(f"{n * 2}-{n * 2}" for n in range(MAX_RANGES + 1))

    assert MAX_RANGES == 16
    assert parse_range(sixteen, 100) == [(n * 2, n * 2) for n in range(16)]
    assert parse_range(seventeen, 100) is None
    # A flood of tiny ranges (the classic range amplification): served whole.
    assert parse_range("bytes=" + ",".join(["0-0"] * 1000), 100) is None
    assert parse_range("bytes=" + ",".join(f"{n}-{n}" for n in range(1000)), 10_000) is None


def test_content_range_values() -> None:
    assert content_range(0, 0, 10) == "bytes 0-0/10"
    assert content_range(5, 9, 10) == "bytes 5-9/10"
    assert unsatisfied_range(10) == "bytes */10"


# --- multipart/byteranges --------------------------------------------------------------------


def test_multipart_byteranges_body() -> None:
    content = bytes(range(256)) * 4
    ranges = parse_range("bytes=0-9,-5,100-199", len(content))
    assert isinstance(ranges, list)

    parts, closing, length = multipart_byteranges(
        ranges, len(content), "application/pdf", "BOUNDARY"
    )
    streamed = b"".join(head + content[first : last + 1] for head, first, last in parts)
    streamed += closing

    assert len(streamed) == length
    assert streamed.startswith(b"--BOUNDARY\r\nContent-Type: application/pdf\r\n")
    assert streamed.endswith(b"\r\n--BOUNDARY--\r\n")
    assert [(first, last) for _, first, last in parts] == [(0, 9), (1019, 1023), (100, 199)]
    # Read back as MIME: three parts, each with its Content-Range and exactly its bytes.
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: multipart/byteranges; boundary=BOUNDARY\r\n\r\n" + streamed
    )
    read = list(message.iter_parts())
    assert [part["Content-Range"] for part in read] == [
        "bytes 0-9/1024",
        "bytes 1019-1023/1024",
        "bytes 100-199/1024",
    ]
    assert [part.get_payload(decode=True) for part in read] == [
        content[0:10],
        content[1019:1024],
        content[100:200],
    ]


def test_multipart_byteranges_default_boundary_and_unsafe_media_type() -> None:
    body = multipart_byteranges([(0, 0), (2, 3)], 4, "text/plain\r\nX-Evil: 1")

    boundary = body.closing.decode().strip().strip("-")
    assert len(boundary) == 32 and int(boundary, 16) >= 0
    assert body.content_length == sum(len(h) + b - a + 1 for h, a, b in body.parts) + len(
        body.closing
    )
    assert body.parts[0][0].startswith(f"--{boundary}\r\n".encode())
    assert body.parts[1][0].startswith(f"\r\n--{boundary}\r\n".encode())
    assert b"X-Evil" not in b"".join(head for head, _, _ in body.parts)
    assert b"Content-Type: application/octet-stream\r\n" in body.parts[0][0]
    assert byteranges_boundary() != byteranges_boundary()


# --- entity tags -----------------------------------------------------------------------------

ETAG = '"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"'
OPAQUE = ETAG.strip('"')


@pytest.mark.parametrize(
    ("if_none_match", "expected"),
    [
        (ETAG, True),
        (f"W/{ETAG}", True),  # weak comparison
        ("*", True),
        (" * ", True),
        (f'"other", {ETAG}', True),
        (f'"other",W/{ETAG} , "more"', True),
        (f'"a,b", {ETAG}', True),  # a comma inside a tag
        (OPAQUE, True),  # unquoted, as some clients send it
        (None, False),
        ("", False),
        ('"other"', False),
        ('W/"other", "x"', False),
        (f'"{OPAQUE}x"', False),
        (f'"{OPAQUE[:-1]}"', False),
        ('"unterminated', False),
        (",,,", False),
        ('"a,b"', False),
    ],
)
def test_etag_matches(if_none_match: str | None, expected: bool) -> None:
    assert etag_matches(if_none_match, ETAG) is expected


def test_etag_matches_a_weak_etag_of_ours() -> None:
    assert etag_matches('"x"', 'W/"x"')
    assert etag_matches('W/"x"', 'W/"x"')


@pytest.mark.parametrize(
    ("if_range", "expected"),
    [
        (None, True),  # no condition
        (ETAG, True),
        (f" {ETAG} ", True),
        (f"W/{ETAG}", False),  # strong comparison: a weak tag never matches
        ('"other"', False),
        ("Sat, 06 Dec 2026 10:00:00 GMT", False),  # a date: serve whole
        (OPAQUE, False),
        ("", False),
        ("*", False),
        (f"{ETAG}, {ETAG}", False),
    ],
)
def test_if_range_allows(if_range: str | None, expected: bool) -> None:
    assert if_range_allows(if_range, ETAG) is expected


def test_if_range_never_matches_a_weak_etag_of_ours() -> None:
    assert not if_range_allows('"x"', 'W/"x"')
