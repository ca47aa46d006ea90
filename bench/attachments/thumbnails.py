"""A thumbnail of a 12-megapixel JPEG: the first request (the server makes it), the second
(it is stored), and Pillow alone in the benchmark process as the baseline; medians over
``--attachments-thumbnails`` photos, after one more as a warm-up.

The photo (``WIDTH`` x ``HEIGHT``) is made with Pillow: smooth colour fields (a small random
image scaled up) with noise over them, saved at quality 90, so that it weighs what a camera's
JPEG does (several MB) rather than compressing to almost nothing. Each round uploads a new copy
(a distinct JPEG comment, so no upload is deduplicated) and asks for its thumbnail twice. The
baseline is what a thumbnail takes at least: ``Image.open``, ``thumbnail((256, 256))`` (which
lets the JPEG decoder scale down while decoding) and ``save`` in the format the server answered
with, timed in this process on the same bytes.
"""

from __future__ import annotations

import io
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from bench._report import log, table

WIDTH, HEIGHT = 4000, 3000
BOX = (256, 256)
FORMATS = {"image/webp": "WEBP", "image/jpeg": "JPEG", "image/png": "PNG"}


def photo(seed: int = 5) -> bytes:
    """A 12-megapixel JPEG with a photo's weight."""
    rng = random.Random(seed)
    small = Image.frombytes("RGB", (40, 30), rng.randbytes(40 * 30 * 3))
    smooth = small.resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
    noise = Image.frombytes("RGB", (WIDTH, HEIGHT), rng.randbytes(WIDTH * HEIGHT * 3))
    image = Image.blend(smooth, noise, 0.12)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def with_comment(jpeg: bytes, text: str) -> bytes:
    """The same JPEG with a comment segment (COM) after its start marker: other bytes, same
    image."""
    comment = text.encode()
    return jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]


def pillow_thumbnail(jpeg: bytes, format_: str) -> bytes:
    with Image.open(io.BytesIO(jpeg)) as image:
        image.thumbnail(BOX)
        out = io.BytesIO()
        image.save(out, format_)
        return out.getvalue()


@dataclass
class Result:
    jpeg_bytes: int
    media_type: str = ""
    thumbnail_size: tuple[int, int] = (0, 0)
    thumbnail_bytes: int = 0
    upload: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)
    second: list[float] = field(default_factory=list)
    pillow: list[float] = field(default_factory=list)

    def ms(self, name: str) -> float:
        times: list[float] = getattr(self, name)
        return statistics.median(times) * 1000


async def measure(mnemo: Any, rounds: int) -> Result:
    """``mnemo``: bench.attachments.transfer.Mnemo, its client of the server under test."""
    jpeg = photo()
    result = Result(len(jpeg))
    log(f"attachments thumbnails: a {WIDTH}x{HEIGHT} JPEG of {len(jpeg) / 1e6:.1f} MB")
    for round_ in range(rounds + 1):  # the first is a warm-up
        data = with_comment(jpeg, f"mnemo bench {round_} {time.time_ns()}")
        file = _Bytes(data)
        start = time.perf_counter()
        attachment = await mnemo.upload(file, name="photo.jpg", media_type="image/jpeg")
        upload = time.perf_counter() - start
        times = []
        for _ in range(2):
            start = time.perf_counter()
            answer = await mnemo.client.get(f"/v1/attachments/{attachment['id']}/thumbnail")
            times.append(time.perf_counter() - start)
            if answer.status_code != 200:
                raise RuntimeError(f"thumbnail: {answer.status_code} {answer.text[:300]}")
        media_type = answer.headers.get("content-type", "").split(";")[0].strip()
        format_ = FORMATS.get(media_type, "WEBP")
        start = time.perf_counter()
        pillow_thumbnail(data, format_)
        pillow = time.perf_counter() - start
        if round_ == 0:
            with Image.open(io.BytesIO(answer.content)) as thumbnail:
                result.thumbnail_size = thumbnail.size
            result.media_type = media_type
            result.thumbnail_bytes = len(answer.content)
            continue
        result.upload.append(upload)
        result.first.append(times[0])
        result.second.append(times[1])
        result.pillow.append(pillow)
        log(
            f"attachments thumbnails round {round_}/{rounds}: first {times[0] * 1000:.0f} ms,"
            f" second {times[1] * 1000:.1f} ms, Pillow alone {pillow * 1000:.0f} ms"
        )
    return result


class _Bytes:
    """Bytes in memory, an upload for transfer.Mnemo.upload."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    async def body(self) -> Any:
        for offset in range(0, self.size, 1024 * 1024):
            yield self.data[offset : offset + 1024 * 1024]


def render(result: Result) -> str:
    rows = [
        ("upload (sniffed, hashed, stored)", f"{result.ms('upload'):.0f}", ""),
        ("first thumbnail request (makes it)", f"{result.ms('first'):.0f}", "yes"),
        ("second request (stored)", f"{result.ms('second'):.1f}", ""),
        (
            f"Pillow alone, in process (open, thumbnail {BOX[0]}, save)",
            f"{result.ms('pillow'):.0f}",
            "",
        ),
    ]
    return (
        f"thumbnail of a {WIDTH}x{HEIGHT} JPEG ({result.jpeg_bytes / 1e6:.1f} MB): "
        f"{result.media_type} {result.thumbnail_size[0]}x{result.thumbnail_size[1]}, "
        f"{result.thumbnail_bytes:,} bytes; first request / Pillow alone "
        f"{result.ms('first') / result.ms('pillow'):.2f}\n\n"
        + table(("request", "ms (median)", "makes it"), rows)
    )


def as_json(result: Result) -> dict[str, Any]:
    return {
        "jpeg": {"width": WIDTH, "height": HEIGHT, "bytes": result.jpeg_bytes},
        "thumbnail": {
            "media_type": result.media_type,
            "size": list(result.thumbnail_size),
            "bytes": result.thumbnail_bytes,
        },
        "upload_ms": round(result.ms("upload"), 2),
        "first_request_ms": round(result.ms("first"), 2),
        "second_request_ms": round(result.ms("second"), 3),
        "pillow_alone_ms": round(result.ms("pillow"), 2),
        "rounds_ms": {
            name: [round(s * 1000, 2) for s in getattr(result, name)]
            for name in ("upload", "first", "second", "pillow")
        },
    }
