"""dal/media.py: sniffing, the type served, inline safety, stored names and thumbnails, on
content made here (no database)."""

from __future__ import annotations

import io
import os
import struct
import time
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image, ImageOps

from dal import errors
from dal.errors import InvalidInput
from dal.media import (
    EMPTY,
    MAX_NAME_BYTES,
    SNIFF_BYTES,
    THUMBNAIL_MEDIA_TYPE,
    ImageRefused,
    Thumbnail,
    is_active,
    is_image,
    is_inline_safe,
    make_thumbnail,
    normalize_media_type,
    resolve_media_type,
    safe_filename,
    sniff,
)

MAX_PIXELS = 40_000_000


def encoded(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def gradient(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """A picture with content (a flat one would compress to nothing and hide resampling)."""
    image = Image.linear_gradient("L").resize((width, height)).convert(mode)
    if mode == "RGBA":
        image.putalpha(Image.linear_gradient("L").resize((width, height)).rotate(90))
    return image


def decoded(thumbnail: Thumbnail) -> Image.Image:
    image = Image.open(io.BytesIO(thumbnail.data))
    image.load()
    return image


def zipped(*entries: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose IHDR says ``width`` x ``height`` (CRC fixed): tiny bytes, a
    decompression bomb by its header."""
    data = bytearray(encoded(Image.new("RGB", (1, 1)), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
HTML = b"<!DOCTYPE html><html><head><title>x</title></head><body><script>alert(1)</script>"
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script>'
XML = b'<?xml version="1.0" encoding="UTF-8"?><root><item>1</item></root>\n'
DOCX = zipped(
    ("[Content_Types].xml", b'<?xml version="1.0"?><Types/>'),
    ("docProps/app.xml", b"<Properties/>" * 200),
    ("word/document.xml", b"<w:document/>" * 100),
)


# --- sniff -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (encoded(gradient(20, 10), "PNG"), "image/png"),
        (encoded(gradient(20, 10), "JPEG"), "image/jpeg"),
        (encoded(gradient(20, 10).convert("P"), "GIF"), "image/gif"),
        (encoded(gradient(20, 10), "WEBP"), "image/webp"),
        (PDF, "application/pdf"),
        (HTML, "text/html"),
        (b"<html><body>hello</body></html>", "text/html"),
        (SVG, "image/svg+xml"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>', "image/svg+xml"),
        (XML, "text/xml"),
        (b"#!/usr/bin/env node\nconsole.log(document.cookie)\n", "application/javascript"),
        (b'{"a": [1, 2, 3], "b": "x"}\n', "application/json"),
        (zipped(("a.txt", b"hello")), "application/zip"),
        (DOCX, "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        (b"hello world\nthis is text\n", "text/plain"),
        ("报告: 你好世界\n".encode(), "text/plain"),
        (b"", EMPTY),
        (os.urandom(4096), "application/octet-stream"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_sniff_names_the_format_of_the_content(content: bytes, expected: str) -> None:
    assert sniff(content) == expected


def test_sniff_reads_only_the_first_64_kib() -> None:
    # Text for 64 KiB, then a PNG signature: what follows the window is not looked at.
    text = b"just some words on a line\n" * (SNIFF_BYTES // 26 + 1)
    png = encoded(gradient(20, 10), "PNG")

    assert sniff(text[:SNIFF_BYTES] + png) == "text/plain"
    assert sniff(png + text) == "image/png"


def test_sniff_of_javascript_without_a_marker_is_plain_text() -> None:
    # libmagic says text/plain for most scripts: served so, a browser never runs them.
    assert sniff(b"function f(x) { return x + 1; }\nvar a = document.cookie;\n") == "text/plain"


def test_sniff_is_safe_from_many_threads() -> None:
    samples = [
        (encoded(gradient(20, 10), "PNG"), "image/png"),
        (PDF, "application/pdf"),
        (HTML, "text/html"),
        (b"plain words\n", "text/plain"),
    ] * 50

    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda sample: sniff(sample[0]), samples))

    assert found == [expected for _, expected in samples]


# --- normalize, resolve ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text/plain", "text/plain"),
        ("  Text/CSV ; charset=UTF-8 ", "text/csv"),
        (
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        ("image/jpg", "image/jpeg"),
        ("IMAGE/PJPEG", "image/jpeg"),
        ("application/x-zip-compressed", "application/zip"),
        ("image/svg+xml", "image/svg+xml"),
        (None, None),
        ("", None),
        ("   ", None),
        ("text", None),
        ("text/", None),
        ("/plain", None),
        ("text/plain/x", None),
        ("text plain", None),
        ("*/*", None),
        ("image/*", None),
        ("text/pl@in", None),
        ("tëxt/plain", None),
        ("text/plain\r\nX-Injected: 1", None),
        ("a/" + "b" * 128, None),
    ],
)
def test_normalize_media_type(value: str | None, expected: str | None) -> None:
    assert normalize_media_type(value) == expected


@pytest.mark.parametrize(
    ("declared", "sniffed", "served", "mismatch"),
    [
        # No declaration, or a garbage one: the sniffed type, no mismatch.
        (None, "image/png", "image/png", False),
        ("not a type", "image/png", "image/png", False),
        ("*/*", "text/plain", "text/plain", False),
        # The same type, however written.
        ("image/png", "image/png", "image/png", False),
        ("IMAGE/PNG; q=1", "image/png", "image/png", False),
        ("image/jpg", "image/jpeg", "image/jpeg", False),
        # A specific sniffed type wins.
        ("image/png", "text/html", "text/html", True),  # an HTML page named .png
        ("image/png", "image/jpeg", "image/jpeg", True),
        ("text/plain", "image/svg+xml", "image/svg+xml", True),
        ("application/pdf", "application/zip", "application/zip", True),
        ("application/octet-stream", "image/png", "image/png", False),
        # text/plain refined by a textual declaration...
        ("text/csv", "text/plain", "text/csv", False),
        ("text/markdown; charset=utf-8", "text/plain", "text/markdown", False),
        ("application/json", "text/plain", "application/json", False),
        ("application/ld+json", "text/plain", "application/ld+json", False),
        ("application/x-yaml", "text/plain", "application/x-yaml", False),
        # ...never by an active or a binary one.
        ("text/html", "text/plain", "text/plain", True),
        ("application/xhtml+xml", "text/plain", "text/plain", True),
        ("image/svg+xml", "text/plain", "text/plain", True),
        ("text/xml", "text/plain", "text/plain", True),
        ("application/xml", "text/plain", "text/plain", True),
        ("application/rss+xml", "text/plain", "text/plain", True),
        ("text/javascript", "text/plain", "text/plain", True),
        ("application/javascript", "text/plain", "text/plain", True),
        ("application/x-javascript", "text/plain", "text/plain", True),
        ("text/ecmascript", "text/plain", "text/plain", True),
        ("text/css", "text/plain", "text/plain", True),
        ("application/manifest+json", "text/plain", "text/plain", True),
        ("image/png", "text/plain", "text/plain", True),
        ("application/pdf", "text/plain", "text/plain", True),
        # application/zip refined by a zip-based format.
        (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/zip",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            False,
        ),
        ("application/epub+zip", "application/zip", "application/epub+zip", False),
        ("application/java-archive", "application/zip", "application/java-archive", False),
        ("application/x-zip-compressed", "application/zip", "application/zip", False),
        ("application/vnd.mozilla.xul+xml", "application/zip", "application/zip", True),
        ("text/csv", "application/zip", "application/zip", True),
        # Legacy Office containers.
        ("application/msword", "application/CDFV2", "application/msword", False),
        (
            "application/vnd.ms-excel",
            "application/x-ole-storage",
            "application/vnd.ms-excel",
            False,
        ),
        ("text/plain", "application/cdfv2", "application/cdfv2", True),
        # Unknown bytes: a declared type downloaded anyway, never one shown inline.
        ("application/x-parquet", "application/octet-stream", "application/x-parquet", False),
        ("text/csv", "application/octet-stream", "text/csv", False),
        ("image/png", "application/octet-stream", "application/octet-stream", True),
        ("application/pdf", "application/octet-stream", "application/octet-stream", True),
        ("text/plain", "application/octet-stream", "application/octet-stream", True),
        ("video/mp4", "application/octet-stream", "application/octet-stream", True),
        ("text/html", "application/octet-stream", "application/octet-stream", True),
        # No bytes: the declared type if it is not active, else octet-stream.
        ("text/plain", EMPTY, "text/plain", False),
        ("image/png", EMPTY, "image/png", False),
        ("text/html", EMPTY, "application/octet-stream", True),
        (None, EMPTY, "application/octet-stream", False),
        # A sniffed value that is not a type (cannot happen with sniff's): octet-stream.
        (None, "data", "application/octet-stream", False),
    ],
)
def test_resolve_media_type(
    declared: str | None, sniffed: str, served: str, mismatch: bool
) -> None:
    assert resolve_media_type(declared, sniffed) == (served, mismatch)


def test_resolve_never_serves_a_declared_active_type_for_any_generic_sniff() -> None:
    active = [
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "application/xslt+xml",
        "text/xsl",
        "application/javascript",
        "text/javascript",
        "application/ecmascript",
        "text/jscript",
        "application/x-ecmascript",
        "text/css",
        "multipart/related",
        "message/rfc822",
        "application/wasm",
        "application/x-shockwave-flash",
        "application/vnd.wap.wmlc",
        "text/x-server-parsed-html",
    ]
    for declared in active:
        assert is_active(declared), declared
        for sniffed in ("text/plain", "application/zip", "application/octet-stream", EMPTY):
            served, mismatch = resolve_media_type(declared, sniffed)
            assert not is_active(served), (declared, sniffed)
            assert mismatch


def test_a_mismatch_is_exactly_a_declared_type_other_than_the_served_one() -> None:
    declarations = [None, "garbage", "image/jpg", "text/csv", "text/html", "image/png"]
    sniffs = ["image/jpeg", "text/plain", "application/octet-stream", EMPTY, "text/html"]
    for declared in declarations:
        for sniffed in sniffs:
            served, mismatch = resolve_media_type(declared, sniffed)
            claimed = normalize_media_type(declared)
            assert mismatch == (claimed is not None and claimed != served)


@pytest.mark.parametrize(
    "media_type",
    [
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/bmp",
        "audio/mpeg",
        "audio/ogg",
        "video/mp4",
        "video/webm",
        "application/pdf",
        "text/plain",
        "Text/Plain; charset=utf-8",
        "image/jpg",
    ],
)
def test_inline_safe_types(media_type: str) -> None:
    assert is_inline_safe(media_type)


@pytest.mark.parametrize(
    "media_type",
    [
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "application/javascript",
        "text/javascript",
        "text/css",
        "text/csv",
        "text/markdown",
        "application/json",
        "application/octet-stream",
        "application/zip",
        "image/tiff",
        "image/x-icon",
        "multipart/related",
        "message/rfc822",
        "application/x-empty",
        "",
        "garbage",
        "image/*",
    ],
)
def test_everything_else_is_downloaded(media_type: str) -> None:
    assert not is_inline_safe(media_type)


def test_is_image_is_what_thumbnails_are_made_of() -> None:
    assert [t for t in ("image/jpeg", "image/png", "image/webp", "image/gif") if is_image(t)] == [
        "image/jpeg",
        "image/png",
        "image/webp",
        "image/gif",
    ]
    assert is_image("IMAGE/JPG")
    for other in ("image/svg+xml", "image/bmp", "image/tiff", "image/avif", "text/plain", "x"):
        assert not is_image(other)


# --- safe_filename ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("/etc/passwd", "passwd"),
        ("C:\\x\\y.pdf", "y.pdf"),
        ("a/b\\c/d.txt", "d.txt"),
        ("报告.pdf", "报告.pdf"),
        ("e\u0301te\u0301.txt", "\u00e9t\u00e9.txt"),  # decomposed accents, composed (NFC)
        ("invoice\u202efdp.exe", "invoicefdp.exe"),  # RTL override: "invoiceexe.pdf" shown
        ("a\u2066b\u2067c\u2068d\u2069e\u202af\u202bg\u202ch\u202di.txt", "abcdefghi.txt"),
        ("a\u200eb\u200fc.txt", "abc.txt"),
        ("nul\x00byte.txt", "nulbyte.txt"),
        ("tab\there\r\nnew\x1b[31m.txt", "tabherenew[31m.txt"),
        ("c1\x85\x9f.txt", "c1.txt"),
        ("del\x7f.txt", "del.txt"),
        ("line\u2028sep.txt", "linesep.txt"),
        ("\ufeffbom.txt", "bom.txt"),
        ("lone\ud800surrogate.txt", "lonesurrogate.txt"),
        (".bashrc", "bashrc"),
        ("  spaced name.txt  ", "spaced name.txt"),
        ("trailing.dots...", "trailing.dots"),
        (". . .hidden. .", "hidden"),
        ("...", "file"),
        ("..", "file"),
        (".", "file"),
        ("", "file"),
        ("   ", "file"),
        ("dir/", "file"),
        ("../", "file"),
        ("\u202e", "file"),
        (None, "file"),
        ('quotes "and" colons: *.txt', 'quotes "and" colons: *.txt'),
    ],
)
def test_safe_filename(raw: str | None, expected: str) -> None:
    assert safe_filename(raw) == expected


def test_safe_filename_fallback() -> None:
    assert safe_filename("..", fallback="upload") == "upload"
    assert safe_filename(None, fallback="upload") == "upload"
    assert safe_filename("a.txt", fallback="upload") == "a.txt"


def test_a_long_name_is_cut_to_255_bytes_keeping_its_extension() -> None:
    cut = safe_filename("a" * 1000 + ".pdf")
    assert cut == "a" * 251 + ".pdf"
    assert len(cut.encode()) == MAX_NAME_BYTES


def test_a_long_name_is_cut_at_a_character_boundary() -> None:
    cut = safe_filename("报" * 1000 + ".pdf")  # 3 bytes a character: 250 // 3 = 83 of them
    assert cut == "报" * 83 + ".pdf"
    assert len(cut.encode()) <= MAX_NAME_BYTES
    cut = safe_filename("😀" * 1000)  # 4 bytes each, no extension
    assert cut == "😀" * 63
    assert len(cut.encode()) <= MAX_NAME_BYTES


def test_a_long_extension_is_not_kept_as_one() -> None:
    cut = safe_filename("name." + "x" * 1000)
    assert cut == ("name." + "x" * 1000)[:MAX_NAME_BYTES]
    assert safe_filename("." + "x" * 1000) == "x" * MAX_NAME_BYTES  # only an "extension"


def test_a_cut_leaves_no_trailing_dot_or_space() -> None:
    cut = safe_filename("a" * 249 + " . . . . . . . ." + ".pdf")
    assert cut == "a" * 249 + ".pdf"


def test_safe_filename_is_idempotent() -> None:
    for raw in ["../../etc/passwd", "报" * 1000 + ".pdf", "a\u202eb.txt", "x" * 300, ". a ."]:
        once = safe_filename(raw)
        assert safe_filename(once) == once


# --- thumbnails ------------------------------------------------------------------------------


def test_thumbnail_of_a_jpeg() -> None:
    thumbnail = make_thumbnail(encoded(gradient(1024, 768), "JPEG"), max_pixels=MAX_PIXELS)

    assert thumbnail.media_type == THUMBNAIL_MEDIA_TYPE == "image/webp"
    assert (thumbnail.width, thumbnail.height) == (256, 192)
    assert (thumbnail.source_width, thumbnail.source_height) == (1024, 768)
    image = decoded(thumbnail)
    assert image.format == "WEBP"
    assert image.size == (256, 192)
    assert image.mode == "RGB"
    # The gradient survived: dark at the top, light at the bottom (resampled, not garbage).
    grey = image.convert("L")
    assert grey.getpixel((128, 3)) < 40 < 215 < grey.getpixel((128, 188))  # type: ignore[operator]


def test_thumbnail_of_a_big_jpeg_is_decoded_in_draft_mode() -> None:
    # 4000x3000 (12 Mpx): decoded at 1/4 scale (1000x750, still twice the box); same output.
    data = encoded(gradient(4000, 3000), "JPEG", quality=90)
    image = Image.open(io.BytesIO(data))
    assert image.draft(None, (512, 512)) is not None
    assert image.size == (1000, 750)

    started = time.perf_counter()
    thumbnail = make_thumbnail(data, max_pixels=MAX_PIXELS)
    elapsed = time.perf_counter() - started

    assert (thumbnail.width, thumbnail.height) == (256, 192)
    assert (thumbnail.source_width, thumbnail.source_height) == (4000, 3000)
    assert elapsed < 5  # a generous bound: draft decoding takes tens of ms


def test_thumbnail_of_a_png_keeps_its_alpha() -> None:
    # Opaque on the left, transparent on the right.
    source = gradient(300, 600, "RGBA")
    source.putalpha(Image.new("L", (300, 600), 255))
    source.paste((0, 0, 0, 0), (150, 0, 300, 600))
    thumbnail = make_thumbnail(encoded(source, "PNG"), max_pixels=MAX_PIXELS)

    assert (thumbnail.width, thumbnail.height) == (128, 256)
    image = decoded(thumbnail)
    assert image.mode == "RGBA"
    assert image.getpixel((10, 128))[3] == 255  # type: ignore[index]
    assert image.getpixel((118, 128))[3] == 0  # type: ignore[index]


def test_thumbnail_of_a_palette_png_with_a_transparent_colour() -> None:
    image = Image.new("P", (64, 64), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (0, 0, 32, 64))
    thumbnail = make_thumbnail(encoded(image, "PNG", transparency=0), max_pixels=MAX_PIXELS)

    result = decoded(thumbnail)
    assert result.size == (64, 64)  # never enlarged
    assert result.mode == "RGBA"
    assert result.getpixel((10, 32)) == (0, 0, 255, 255)
    assert result.getpixel((50, 32))[3] == 0  # type: ignore[index]


def test_thumbnail_of_a_webp() -> None:
    thumbnail = make_thumbnail(encoded(gradient(512, 512), "WEBP"), max_pixels=MAX_PIXELS)

    assert (thumbnail.width, thumbnail.height) == (256, 256)


def test_thumbnail_of_an_animated_gif_is_its_first_frame() -> None:
    frames = [Image.new("RGB", (400, 200), colour) for colour in ("red", "lime", "blue")]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 3  # type: ignore[attr-defined]

    thumbnail = make_thumbnail(data, max_pixels=MAX_PIXELS)

    assert (thumbnail.width, thumbnail.height) == (256, 128)
    red, green, blue = decoded(thumbnail).convert("RGB").getpixel((128, 64))  # type: ignore[misc]
    assert red > 200 and green < 50 and blue < 50


@pytest.mark.parametrize("format", ["PNG", "WEBP"])
def test_thumbnail_of_an_animated_png_or_webp_is_its_first_frame(format: str) -> None:
    frames = [Image.new("RGBA", (300, 300), colour) for colour in ("red", "lime", "blue")]
    data = encoded(frames[0], format, save_all=True, append_images=frames[1:], duration=100)

    thumbnail = make_thumbnail(data, max_pixels=MAX_PIXELS)

    assert (thumbnail.width, thumbnail.height) == (256, 256)
    red, green, blue = decoded(thumbnail).convert("RGB").getpixel((128, 128))  # type: ignore[misc]
    assert red > 200 and green < 50 and blue < 50


@pytest.mark.parametrize(
    ("orientation", "shown"), [(1, (400, 200)), (3, (400, 200)), (6, (200, 400)), (8, (200, 400))]
)
def test_thumbnail_applies_the_exif_orientation(orientation: int, shown: tuple[int, int]) -> None:
    # Left half dark, right half light; stored 400x200.
    source = Image.new("L", (400, 200), 0)
    source.paste(255, (200, 0, 400, 200))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(source.convert("RGB"), "JPEG", exif=exif.tobytes())

    thumbnail = make_thumbnail(data, max_pixels=MAX_PIXELS)

    assert (thumbnail.source_width, thumbnail.source_height) == shown
    assert (thumbnail.width, thumbnail.height) == (256, 128) if shown[0] > shown[1] else (128, 256)
    # The same picture ImageOps.exif_transpose shows, made small.
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("L")
    expected.thumbnail((256, 256))
    got = decoded(thumbnail).convert("L")
    for x, y in [(10, 10), (got.width - 10, got.height - 10), (10, got.height - 10)]:
        assert abs(got.getpixel((x, y)) - expected.getpixel((x, y))) < 40  # type: ignore[operator]


def test_thumbnail_of_a_16_bit_greyscale_png() -> None:
    image = Image.new("I;16", (100, 100), 0)
    image.paste(Image.new("I;16", (50, 100), 65535), (50, 0))
    thumbnail = make_thumbnail(encoded(image, "PNG"), max_pixels=MAX_PIXELS)

    grey = decoded(thumbnail).convert("L")
    assert grey.getpixel((10, 50)) < 30 and grey.getpixel((90, 50)) > 225  # type: ignore[operator]


def test_thumbnail_of_a_cmyk_jpeg() -> None:
    data = encoded(Image.new("CMYK", (300, 300), (0, 255, 255, 0)), "JPEG")  # red
    red, green, blue = decoded(make_thumbnail(data, max_pixels=MAX_PIXELS)).getpixel((5, 5))  # type: ignore[misc]
    assert red > 200 and green < 60 and blue < 60


def test_thumbnail_max_side() -> None:
    thumbnail = make_thumbnail(
        encoded(gradient(1000, 500), "PNG"), max_side=64, max_pixels=MAX_PIXELS
    )
    assert (thumbnail.width, thumbnail.height) == (64, 32)


def test_a_small_image_is_not_enlarged() -> None:
    thumbnail = make_thumbnail(encoded(gradient(30, 20), "PNG"), max_pixels=MAX_PIXELS)
    assert (thumbnail.width, thumbnail.height) == (30, 20)
    assert (thumbnail.source_width, thumbnail.source_height) == (30, 20)


def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    bomb = png_declaring(50_000, 50_000)  # 2.5 gigapixels in 69 bytes
    assert len(bomb) < 100

    with pytest.raises(ImageRefused, match="too many pixels"):  # by Pillow's own check
        make_thumbnail(bomb, max_pixels=MAX_PIXELS)
    # Within Pillow's bound, over ours: refused by the header's size (its pixels, a single
    # one, would not decode as 8000x8000: the message proves nothing was decoded).
    with pytest.raises(ImageRefused, match="8000x8000 pixels, more than the 40000000"):
        make_thumbnail(png_declaring(8000, 8000), max_pixels=MAX_PIXELS)


def test_an_image_over_max_pixels_is_refused_before_decoding() -> None:
    # A real, compressible 3000x3000 PNG, over a small bound; and just within it.
    data = encoded(Image.new("RGB", (3000, 3000)), "PNG")
    assert len(data) < 100_000

    with pytest.raises(ImageRefused, match="more than the 1000000"):
        make_thumbnail(data, max_pixels=1_000_000)
    assert make_thumbnail(data, max_pixels=9_000_000).width == 256


def test_pillows_own_bomb_limit_is_refused_too() -> None:
    # Above Image.MAX_IMAGE_PIXELS * 2 Pillow refuses at open, whatever max_pixels says.
    huge = png_declaring(20_000, 20_000)
    with pytest.raises(ImageRefused, match="too many pixels"):
        make_thumbnail(huge, max_pixels=10**12)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        os.urandom(2048),
        HTML,  # an HTML page named .png
        SVG,
        PDF,
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 100,  # a PNG signature and nothing valid
        encoded(gradient(200, 200), "PNG")[:300],  # truncated
        encoded(gradient(200, 200), "JPEG")[:600],
        encoded(gradient(200, 200), "WEBP")[:100],
        encoded(gradient(200, 200).convert("P"), "GIF")[:200],
        encoded(gradient(20, 20), "BMP"),  # a format not thumbnailed
        encoded(gradient(20, 20), "TIFF"),
        png_declaring(0, 0),
    ],
    ids=[
        "empty",
        "random",
        "html",
        "svg",
        "pdf",
        "png-signature",
        "png-truncated",
        "jpeg-truncated",
        "webp-truncated",
        "gif-truncated",
        "bmp",
        "tiff",
        "png-zero-size",
    ],
)
def test_what_is_not_a_decodable_image_is_refused(data: bytes) -> None:
    with pytest.raises(ImageRefused):
        make_thumbnail(data, max_pixels=MAX_PIXELS)


def test_a_corrupt_image_body_is_refused() -> None:
    # A valid header, garbage where the pixels are compressed.
    data = bytearray(encoded(gradient(200, 200), "PNG"))
    start = data.index(b"IDAT") + 4
    data[start : start + 200] = b"\xff" * 200

    with pytest.raises(ImageRefused):
        make_thumbnail(bytes(data), max_pixels=MAX_PIXELS)


def test_image_refused_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as raised:
        make_thumbnail(b"nothing", max_pixels=MAX_PIXELS)
    assert raised.value.code == "image_refused"
    assert type(raised.value) is errors.ImageRefused is ImageRefused
    assert "cannot be decoded" in raised.value.message


def test_thumbnails_from_many_threads_at_once() -> None:
    sources = [
        encoded(gradient(800, 600), "JPEG"),
        encoded(gradient(600, 800, "RGBA"), "PNG"),
        encoded(gradient(500, 500), "WEBP"),
        encoded(gradient(400, 200).convert("P"), "GIF"),
    ] * 4
    expected = [make_thumbnail(data, max_pixels=MAX_PIXELS).data for data in sources]

    def run(data: bytes) -> bytes:
        return make_thumbnail(data, max_pixels=MAX_PIXELS).data

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(run, sources)) == expected
