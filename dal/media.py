"""Attachments' content, without a database: the media type of some bytes (sniffed with
libmagic, then reconciled with what the client declared), whether a browser may show it
inline, a name safe to store and send back, and an image's thumbnail (Pillow).

Everything here is pure and thread-safe. ``sniff`` costs a few milliseconds at most (it may
run on the event loop); ``make_thumbnail`` decodes an image and belongs in a worker thread
(``asyncio.to_thread``).
"""

from __future__ import annotations

import io
import re
import struct
import threading
import unicodedata
from dataclasses import dataclass

import magic
from PIL import Image, features

# Raised by make_thumbnail: an InvalidInput (422 image_refused); dal.media.ImageRefused too.
from dal.errors import ImageRefused as ImageRefused

# --- media types -----------------------------------------------------------------------------

SNIFF_BYTES = 64 * 1024
"""How much of the content ``sniff`` looks at. libmagic's text heuristics cost about 2 ms
whatever the length and its binary rules 0.3 ms; a longer prefix changes no answer in
practice: the rules that need more than the first bytes (the OOXML ones that tell a .docx
from any zip) look for their entries within a few KiB of the start, and a zip whose first
entries are others stays ``application/zip`` at 64 KiB as at 1 MiB or more (measured with
file 5.44). So 64 KiB it is, and ``resolve_media_type`` lets a declared Office type refine a
generic ``application/zip``."""

OCTET_STREAM = "application/octet-stream"
EMPTY = "application/x-empty"
"""What ``sniff`` says of no bytes at all (libmagic's own answer). It is no type to serve:
``resolve_media_type`` serves the declared type of an empty file, or ``OCTET_STREAM``."""

# RFC 9110 token characters; RFC 6838 bounds a type and a subtype to 127 characters each.
_TOKEN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,127}"
_MEDIA_TYPE = re.compile(rf"({_TOKEN})/({_TOKEN})")

# Names that clients send for a type that has another (registered, or what libmagic says).
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "image/x-ms-bmp": "image/bmp",
    "application/x-pdf": "application/pdf",
    "application/x-zip-compressed": "application/zip",
    "application/x-zip": "application/zip",
    "application/x-gzip": "application/gzip",
    "audio/mp3": "audio/mpeg",
    "text/json": "application/json",
}

# Types a browser runs or interprets with the page's authority (documents, scripts, style
# sheets, XML with its XSLT and XHTML/SVG dialects, MHTML archives, plug-ins). Never taken
# from a declaration; served, when sniffed, as attachments (see is_inline_safe).
_ACTIVE = frozenset(
    {
        "text/css",
        "text/xsl",
        "text/x-component",  # IE's HTC behaviours
        "text/cache-manifest",
        "application/manifest+json",
        "application/wasm",
        "application/x-shockwave-flash",
        "application/futuresplash",
        "application/hta",
        "application/x-ms-application",
    }
)
_ACTIVE_WORDS = ("html", "javascript", "ecmascript", "jscript", "livescript", "wml")

# libmagic's answers that name a family rather than a format, and which declared types each
# one may be refined into (see resolve_media_type).
_TEXT = "text/plain"
_ZIP = "application/zip"
_OLE = frozenset({"application/cdfv2", "application/x-ole-storage"})
_TEXTUAL_APPLICATION = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/jsonl",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/x-toml",
        "application/sql",
        "application/x-sh",
        "application/x-tex",
        "application/x-latex",
    }
)
_ZIP_BASED = frozenset(
    {"application/java-archive", "application/x-java-archive", "application/epub+zip"}
)

_INLINE = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/bmp",
        "application/pdf",
        "text/plain",
    }
)
_INLINE_FAMILIES = ("audio/", "video/")

_IMAGES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})

_local = threading.local()


def _magic() -> magic.Magic:
    """This thread's libmagic handle: a handle is not safe to share between threads, and one
    per thread (a few, the event loop's and the worker pool's) spares a lock."""
    found: magic.Magic | None = getattr(_local, "magic", None)
    if found is None:
        found = _local.magic = magic.Magic(mime=True)
    return found


def sniff(head: bytes) -> str:
    """The media type of content from its first bytes (pass up to the first chunk; only the
    first ``SNIFF_BYTES`` are read), normalized as ``normalize_media_type`` does:
    ``application/x-empty`` (``EMPTY``) for no bytes, ``application/octet-stream`` when
    libmagic knows nothing better or fails."""
    if not head:
        return EMPTY
    try:
        found = _magic().from_buffer(bytes(head[:SNIFF_BYTES]))
    except magic.MagicException:
        return OCTET_STREAM
    return normalize_media_type(found) or OCTET_STREAM


def normalize_media_type(value: str | None) -> str | None:
    """``type/subtype`` in lower case, without parameters or spaces, with a common alias
    replaced by its usual name (``image/jpg`` → ``image/jpeg``, see ``_ALIASES``); None for
    None, an empty value, a wildcard (``*/*``, ``image/*``) or anything that is not a media
    type by RFC 9110's grammar. What to store as an attachment's declared type."""
    if value is None:
        return None
    essence = value.split(";", 1)[0].strip()
    matched = _MEDIA_TYPE.fullmatch(essence) if essence.isascii() else None
    if matched is None or "*" in (matched[1], matched[2]):
        return None
    lowered = essence.lower()
    return _ALIASES.get(lowered, lowered)


def is_active(media_type: str) -> bool:
    """Whether a browser would run or interpret content of this type with the authority of
    the site serving it: HTML and XHTML, SVG, any XML, JavaScript and its aliases, CSS, MHTML
    (``multipart/*``, ``message/*``), WebAssembly, Flash, web app manifests. Unparsable →
    True (the cautious answer)."""
    essence = normalize_media_type(media_type)
    if essence is None:
        return True
    kind, subtype = essence.split("/")
    return (
        essence in _ACTIVE
        or kind in ("multipart", "message")
        or subtype == "xml"
        or subtype.endswith("+xml")
        or any(word in subtype for word in _ACTIVE_WORDS)
    )


def _refines(sniffed: str, declared: str) -> bool:
    """Whether ``declared`` may be served for content libmagic only calls ``sniffed``."""
    if is_active(declared):
        return False
    if sniffed == EMPTY:  # no bytes: nothing to misread
        return True
    if sniffed == OCTET_STREAM:  # unknown bytes: only what is downloaded anyway
        return not is_inline_safe(declared)
    kind, subtype = declared.split("/")
    if sniffed == _TEXT:
        return (
            kind == "text"
            or declared in _TEXTUAL_APPLICATION
            or subtype.endswith(("+json", "+yaml"))
        )
    if sniffed == _ZIP:
        return kind == "application" and (
            subtype.startswith("vnd.") or subtype.endswith("+zip") or declared in _ZIP_BASED
        )
    if sniffed in _OLE:
        return kind == "application" and (subtype.startswith("vnd.") or subtype == "msword")
    return False


def resolve_media_type(declared: str | None, sniffed: str) -> tuple[str, bool]:
    """The media type to serve content as, and whether the declared one is a mismatch.

    Both are normalized (``normalize_media_type``); a declared value that is not a media
    type counts as none. The sniffed type is served, except where libmagic only names a
    family, and the declared type is a member of it that it cannot tell apart:

    - ``text/plain`` (libmagic's answer for CSV, Markdown, CSS, JavaScript and most text):
      any ``text/*`` type, JSON and YAML (``+json``/``+yaml`` too) and a few textual
      ``application/*`` types (``_TEXTUAL_APPLICATION``);
    - ``application/zip``: ``application/vnd.*`` (OOXML, OpenDocument...), ``*+zip``, JAR;
    - ``application/cdfv2``/``x-ole-storage`` (legacy Office containers):
      ``application/msword`` and ``application/vnd.*``;
    - ``application/octet-stream`` (unknown bytes): any type not shown inline
      (``is_inline_safe``): a type a browser would render is served only when libmagic
      recognized it;
    - ``application/x-empty`` (no bytes): any type; with none, ``application/octet-stream``.

    In no case is an active type (``is_active``: HTML, SVG, XML, JavaScript, CSS...) taken
    from the declaration, so a client cannot make Mnemo serve its bytes as one. The mismatch
    is ``declared is not None and declared != served`` after normalization (so
    ``image/jpg`` for a JPEG is no mismatch); an invalid declaration is none, no mismatch; so
    is ``application/octet-stream``, which says the client does not know (what curl
    --data-binary and many clients send for any file).
    """
    served = normalize_media_type(sniffed) or OCTET_STREAM
    claimed = normalize_media_type(declared)
    if claimed is not None and claimed != served and _refines(served, claimed):
        served = claimed
    elif served == EMPTY:
        served = OCTET_STREAM
    return served, claimed not in (None, OCTET_STREAM) and claimed != served


def is_inline_safe(media_type: str) -> bool:
    """Whether a browser may show content of this type in the page (``Content-Disposition:
    inline``): raster images (PNG, JPEG, GIF, WebP, AVIF, BMP), ``audio/*``, ``video/*``,
    PDF, plain text. Anything else, known or not, is downloaded (``attachment``)."""
    essence = normalize_media_type(media_type)
    if essence is None:
        return False
    return essence in _INLINE or essence.startswith(_INLINE_FAMILIES)


def is_image(media_type: str) -> bool:
    """Whether ``make_thumbnail`` takes content of this type: JPEG, PNG, WebP, GIF."""
    return normalize_media_type(media_type) in _IMAGES


# --- file names ------------------------------------------------------------------------------

MAX_NAME_BYTES = 255
"""A stored name's bound in UTF-8 bytes: what most file systems allow a file name."""
_MAX_EXTENSION_BYTES = 32  # longer, the part after the last dot is no extension to keep

# Bidirectional controls (embeddings, overrides, isolates, marks) that make "exe.pdf" read as
# "fdp.exe"; with them the C0/C1 controls, line and paragraph separators, lone surrogates
# (which UTF-8 cannot encode) and the byte-order mark.
_INVISIBLE = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029\ufeff"
)


def _kept(char: str) -> bool:
    return char not in _INVISIBLE and unicodedata.category(char) not in ("Cc", "Cs")


def _trimmed(name: str) -> str:
    """Without leading and trailing dots and white space."""
    start, end = 0, len(name)
    while start < end and (name[start] == "." or name[start].isspace()):
        start += 1
    while end > start and (name[end - 1] == "." or name[end - 1].isspace()):
        end -= 1
    return name[start:end]


def _cut(text: str, limit: int) -> str:
    """The longest prefix of ``text`` within ``limit`` UTF-8 bytes (whole characters)."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def safe_filename(raw: str | None, fallback: str = "file") -> str:
    """A name to store and send back for a file a client named ``raw``: NFC-normalized; its
    last path component (after any ``/`` or ``\\``); without control characters (C0, C1,
    NUL, DEL), bidirectional controls (U+202A-U+202E, U+2066-U+2069, LRM, RLM, ALM), line
    separators, lone surrogates or BOM; without leading or trailing dots and spaces (no
    hidden ``.name``, no ``..``); at most ``MAX_NAME_BYTES`` UTF-8 bytes, cut at a character
    boundary and keeping the extension (up to 32 bytes after the last dot) when it fits.
    ``fallback`` (returned as given) when nothing is left. Other characters (quotes, ``:``,
    ``*``...) are kept: the name is data here, and ``app.files.content_disposition`` makes it
    safe to send."""
    if raw is None:
        return fallback
    name = "".join(filter(_kept, unicodedata.normalize("NFC", raw)))
    name = _trimmed(re.split(r"[/\\]", name)[-1])
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        stem, dot, extension = name.rpartition(".")
        suffix = dot + extension
        if stem and len(suffix.encode("utf-8")) <= _MAX_EXTENSION_BYTES:
            stem = _trimmed(_cut(stem, MAX_NAME_BYTES - len(suffix.encode("utf-8"))))
            name = stem + suffix if stem else _trimmed(_cut(name, MAX_NAME_BYTES))
        else:
            name = _trimmed(_cut(name, MAX_NAME_BYTES))
    return name or fallback


# --- thumbnails ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Thumbnail:
    data: bytes
    media_type: str  # THUMBNAIL_MEDIA_TYPE, or image/png for a transparent one without WebP
    width: int
    height: int
    source_width: int  # the original's size as shown (after its EXIF orientation)
    source_height: int


WEBP = features.check("webp")
THUMBNAIL_MEDIA_TYPE = "image/webp" if WEBP else "image/jpeg"
THUMBNAIL_QUALITY = 80
_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")  # Pillow's names; no other decoder is ever tried
# What Pillow raises on content it cannot decode (its fuzzers' list, and the errors of
# the struct parsing some plugins do).
_UNDECODABLE = (
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,  # when warnings are errors
    OSError,  # includes UnidentifiedImageError and truncated data
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    struct.error,
)
_TRANSPOSED = (5, 6, 7, 8)  # EXIF orientations that swap width and height
# EXIF orientation → the transposition that shows the picture upright (ImageOps.exif_transpose's
# table). Applied to the thumbnail rather than the original: a fraction of the pixels to move.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(0x0112, 1)
    except _UNDECODABLE:  # a broken EXIF block: the picture itself may be fine
        return 1
    return value if isinstance(value, int) else 1


def make_thumbnail(data: bytes, *, max_side: int = 256, max_pixels: int) -> Thumbnail:
    """A thumbnail of a JPEG, PNG, WebP or GIF image: at most ``max_side`` pixels on its
    long side (never enlarged), EXIF orientation applied, transparency kept, the first frame
    of an animation; WebP at quality 80 (JPEG, or PNG when transparent, if Pillow lacks
    WebP), without metadata.

    Raises ImageRefused before decoding anything when the image declares more than
    ``max_pixels`` pixels (a decompression bomb), and for data that is not one of the four
    formats, is corrupt or is truncated. Pillow's own bomb check (``Image.MAX_IMAGE_PIXELS``)
    still applies above ``max_pixels``: beyond twice its limit Pillow refuses, beyond it it
    warns (and refuses where warnings are errors). A big JPEG is decoded at a reduced scale
    (draft mode: 1/2 to 1/8), so memory and time follow the thumbnail, not the photo.
    CPU-bound (tens of ms for a 12-megapixel JPEG): call it in a worker thread. Thread-safe.
    """
    if max_side < 1 or max_pixels < 1:
        raise ValueError("max_side and max_pixels must be positive")
    try:
        with Image.open(io.BytesIO(data), formats=_FORMATS) as image:
            width, height = image.size
            if width < 1 or height < 1:
                raise ImageRefused("the image has no pixels")
            if width * height > max_pixels:
                raise ImageRefused(
                    f"the image has {width}x{height} pixels, more than the {max_pixels} "
                    "allowed (APP_MAX_IMAGE_PIXELS)"
                )
            return _thumbnail(image, max_side)
    except ImageRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRefused(f"the image has too many pixels ({_reason(exc)})") from exc
    except _UNDECODABLE as exc:
        raise ImageRefused(f"the image cannot be decoded ({_reason(exc)})") from exc


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def _thumbnail(image: Image.Image, max_side: int) -> Thumbnail:
    """``make_thumbnail`` on an opened image within the pixel bound (the first frame: a
    frame other than the first is decoded only on ``seek``)."""
    source_width, source_height = image.size
    # JPEG only: decode at the smallest scale (1/1 to 1/8) still twice the box, which
    # Image.thumbnail's own reducing gap would ask for too.
    image.draft(None, (2 * max_side, 2 * max_side))
    # Decoded before anything else reads it: a PNG's getexif() loads the image (an eXIf
    # chunk may follow the pixels), and a failed load, if swallowed there, would leave a
    # half-decoded image that a second load() takes as done.
    image.load()
    orientation = _orientation(image)
    if orientation in _TRANSPOSED:
        source_width, source_height = source_height, source_width
    alpha = _has_alpha(image)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit grey to 8-bit
        image = image.convert("I").point(lambda value: value / 256).convert("L")
    # Resampled as they are: RGB and grey, with alpha when it has some; any other mode
    # (palette, CMYK, 1-bit, or a transparent colour key) converted first.
    if image.mode not in (("RGBA", "LA") if alpha else ("RGB", "L")):
        image = image.convert("RGBA" if alpha else "RGB")
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    image = image.convert("RGBA" if alpha else "RGB")
    if orientation in _TRANSPOSE:  # what ImageOps.exif_transpose does, on the thumbnail
        image = image.transpose(_TRANSPOSE[orientation])
    buffer = io.BytesIO()
    if WEBP:
        image.save(buffer, "WEBP", quality=THUMBNAIL_QUALITY)
        media_type = "image/webp"
    elif alpha:
        image.save(buffer, "PNG", optimize=False)
        media_type = "image/png"
    else:
        image.save(buffer, "JPEG", quality=THUMBNAIL_QUALITY)
        media_type = "image/jpeg"
    return Thumbnail(
        data=buffer.getvalue(),
        media_type=media_type,
        width=image.width,
        height=image.height,
        source_width=source_width,
        source_height=source_height,
    )
