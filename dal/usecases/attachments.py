"""Attachments (README "Attachments"): an upload streamed from any async iterator of bytes
into 1 MiB chunks (hashed and sniffed on the way, never held whole), a file's bytes streamed
back in slices, thumbnails made lazily off the event loop, and the collection of files no
message references. Each step is a statement of ``dal.gateways.attachments``.

Memory is bounded by chunks, not files: an upload holds at most two chunks (the one being
stored while the next one arrives), a download two batches of ``READ_BATCH`` bytes (the one
being sent while the next one is read); a thumbnail holds its image (at most
``MAX_THUMBNAIL_SOURCE_BYTES``), and at most ``THUMBNAIL_RENDERS`` are made at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg

from dal import media
from dal.errors import ImageRefused, NotFound, Timeout, TooLarge, Unavailable
from dal.gateways import attachments
from dal.gateways.attachments import CHUNK_SIZE, STALE_UPLOAD_SECONDS
from dal.records.attachments import Collected, Thumbnail, Uploaded

_log = logging.getLogger(__name__)

# Bytes one read of a download asks for (whole chunks); the next is read while this is sent.
READ_BATCH = 2 * CHUNK_SIZE
# The largest image a thumbnail is made of (it is read whole into memory to be decoded).
MAX_THUMBNAIL_SOURCE_BYTES = 64 * 1024 * 1024
# The long side of a thumbnail, in pixels.
THUMBNAIL_SIDE = 256
# Thumbnails made at once per process (each decodes an image: up to APP_MAX_IMAGE_PIXELS).
THUMBNAIL_RENDERS = 2
_renders: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)

Pool: TypeAlias = "asyncpg.Pool[Any]"
# Clean-ups left to run after their request answered (a reference keeps each task alive).
_behind: set[asyncio.Future[None]] = set()


def _too_large(max_bytes: int) -> TooLarge:
    return TooLarge(
        f"the file is over {max_bytes} bytes (APP_MAX_ATTACHMENT_BYTES)",
        code="attachment_too_large",
    )


async def _abandon(
    pool: Pool, user_id: UUID, attachment_id: UUID, storing: asyncio.Future[None] | None
) -> None:
    """Drop an unfinished upload once the chunk being stored, if any, is (bounded by the
    statement's timeout); if the database cannot be reached, a collection does it later (an
    unfinished upload is nobody's to read or reference meanwhile)."""
    if storing is not None:
        await asyncio.gather(storing, return_exceptions=True)
    try:
        await attachments.delete_attachment_upload(
            pool, user_id=user_id, attachment_id=attachment_id
        )
    except Exception:  # the error that got here is the one to report
        _log.warning(
            "could not drop unfinished upload %s; a collection will", attachment_id, exc_info=True
        )


async def upload_attachment(
    pool: Pool,
    *,
    user_id: UUID,
    conversation_id: UUID,
    name: str,
    declared_type: str | None,
    content: AsyncIterable[bytes],
    max_bytes: int,
    quota: int = 0,
) -> Uploaded:
    """Store the bytes ``content`` yields as a file of the caller's, uploaded into a
    conversation where they may append, chunk by chunk as they arrive. Its media type is
    sniffed from its first bytes (``dal.media``); ``declared_type`` is kept, and a mismatch
    recorded. When the caller already has a file with the same bytes, that one is returned
    (``created`` False) and nothing new is kept.

    TooLarge ``attachment_too_large`` as soon as the bytes pass ``max_bytes``, TooLarge
    ``quota_exceeded`` as soon as they would pass the caller's ``quota`` (0: none); NotFound /
    NotPermitted as ``gateways.attachments.insert_attachment``. On any error, or if
    ``content`` raises (a client gone), nothing of the upload is left.
    """
    attachment_id = await attachments.insert_attachment(
        pool,
        user_id=user_id,
        conversation_id=conversation_id,
        name=name,
        declared_type=declared_type,
    )
    storing: asyncio.Task[None] | None = None
    try:
        digest = hashlib.sha256()
        head = b""
        size = 0
        n = 0
        buffer = bytearray()

        async def store(chunk: bytes, number: int) -> None:
            await attachments.insert_attachment_chunk(
                pool,
                user_id=user_id,
                attachment_id=attachment_id,
                n=number,
                data=chunk,
                quota=quota,
            )

        async def flush(chunk: bytes) -> None:
            # One chunk stored while the next arrives: wait for the previous one first.
            nonlocal storing, n, head
            if storing is not None:
                await storing
            if n == 0:
                head = chunk[: media.SNIFF_BYTES]
            digest.update(chunk)
            storing = asyncio.ensure_future(store(chunk, n))
            n += 1

        async for piece in content:
            size += len(piece)
            if size > max_bytes:
                raise _too_large(max_bytes)
            buffer += piece
            while len(buffer) >= CHUNK_SIZE:
                chunk = bytes(buffer[:CHUNK_SIZE])
                del buffer[:CHUNK_SIZE]
                await flush(chunk)
        if buffer:
            await flush(bytes(buffer))
            buffer.clear()
        if storing is not None:
            await storing
            storing = None
        served, mismatch = media.resolve_media_type(declared_type, media.sniff(head))
        return await attachments.update_attachment_ready(
            pool,
            user_id=user_id,
            attachment_id=attachment_id,
            sha256=digest.digest(),
            media_type=served,
            type_mismatch=mismatch,
        )
    except BaseException as exc:
        # Shielded: a cancelled request (a server stopping) still drops what it stored. The
        # chunk being stored is waited for, not cancelled: a statement cut off mid-flight may
        # still run on the server beside the deletion (its connection dropped, not its
        # backend), and the deletion must come after it. When the database is what failed
        # (down, frozen), the caller gets its 503 now and the deletion is tried behind it:
        # waiting for it would double the wait, and the rows are nobody's to read meanwhile.
        cleanup = _abandon(pool, user_id, attachment_id, storing)
        if isinstance(exc, Unavailable | Timeout):
            task = asyncio.ensure_future(cleanup)
            _behind.add(task)
            task.add_done_callback(_behind.discard)
        else:
            await asyncio.shield(cleanup)
        raise


async def read_attachment(
    pool: Pool, *, user_id: UUID, attachment_id: UUID, first: int, last: int
) -> AsyncIterator[bytes]:
    """Bytes ``first`` to ``last`` (inclusive) of a file the caller may read, in slices of at
    most a chunk, each batch read while the one before is consumed. NotFound when the caller
    may no longer read it, or it is gone, before ``last`` (check with
    ``gateways.attachments.get_attachment`` first: this is for the bytes)."""

    async def batch(start: int) -> list[bytes]:
        end = min(last, (start // CHUNK_SIZE) * CHUNK_SIZE + READ_BATCH - 1)
        return await attachments.list_attachment_chunks(
            pool, user_id=user_id, attachment_id=attachment_id, first=start, last=end
        )

    position = first
    if position > last:
        return
    pending: asyncio.Future[list[bytes]] | None = asyncio.ensure_future(batch(position))
    try:
        while pending is not None:
            slices = await pending
            pending = None
            got = sum(len(s) for s in slices)
            if got == 0:
                raise NotFound("attachment", attachment_id)
            after = position + got
            if after <= last:
                pending = asyncio.ensure_future(batch(after))
            for piece in slices:
                yield piece
            position = after
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)


async def read_attachment_bytes(pool: Pool, *, user_id: UUID, attachment_id: UUID) -> bytes:
    """The whole of a small file the caller may read (a thumbnail's source; or a test's)."""
    found = await attachments.get_attachment(pool, user_id=user_id, attachment_id=attachment_id)
    if found.size == 0:
        return b""
    pieces = [
        piece
        async for piece in read_attachment(
            pool, user_id=user_id, attachment_id=attachment_id, first=0, last=found.size - 1
        )
    ]
    return b"".join(pieces)


def _semaphore() -> asyncio.Semaphore:
    """The running loop's: a semaphore belongs to the loop it first waits on."""
    loop = asyncio.get_running_loop()
    found = _renders.get(loop)
    if found is None:
        found = _renders[loop] = asyncio.Semaphore(THUMBNAIL_RENDERS)
    return found


async def attachment_thumbnail(
    pool: Pool, *, user_id: UUID, attachment_id: UUID, max_pixels: int
) -> Thumbnail:
    """The thumbnail of an image the caller may read, made on the first request (in a worker
    thread, at most THUMBNAIL_RENDERS at once) and kept. NotFound when the file is not the
    caller's to read or is not an image of a kind thumbnails are made of (JPEG, PNG, WebP,
    GIF); ImageRefused (422) when it cannot be made: corrupt, over ``max_pixels`` pixels (a
    decompression bomb), or over MAX_THUMBNAIL_SOURCE_BYTES — kept too, so it is not tried
    again."""
    found = await attachments.get_attachment_thumbnail(
        pool, user_id=user_id, attachment_id=attachment_id
    )
    if found.data is not None:
        return found
    if found.refused is not None:
        raise ImageRefused(found.refused)
    if not media.is_image(found.source_type):
        raise NotFound(f"thumbnail of attachment {attachment_id} ({found.source_type})")
    refused: str | None = None
    made: media.Thumbnail | None = None
    if found.source_size > MAX_THUMBNAIL_SOURCE_BYTES:
        refused = f"the image is over {MAX_THUMBNAIL_SOURCE_BYTES} bytes"
    else:
        # The image is read under the semaphore too: at most THUMBNAIL_RENDERS are in memory.
        async with _semaphore():
            data = await read_attachment_bytes(pool, user_id=user_id, attachment_id=attachment_id)
            try:
                made = await asyncio.to_thread(
                    media.make_thumbnail, data, max_side=THUMBNAIL_SIDE, max_pixels=max_pixels
                )
            except media.ImageRefused as exc:
                refused = str(exc)
            del data
    values: dict[str, Any] = {
        "source_type": found.source_type,
        "source_size": found.source_size,
        "media_type": None if made is None else made.media_type,
        "data": None if made is None else made.data,
        "width": None if made is None else made.width,
        "height": None if made is None else made.height,
        "refused": refused,
    }
    result = Thumbnail.from_values(values)
    await attachments.insert_attachment_thumbnail(pool, attachment_id=attachment_id, made=result)
    if refused is not None:
        raise ImageRefused(refused)
    return result


async def collect_attachments(
    pool: Pool,
    *,
    grace: float,
    batch: int = 100,
    stale: float = STALE_UPLOAD_SECONDS,
    on_batch: Callable[[Collected], Awaitable[None] | None] | None = None,
) -> Collected:
    """Delete, batch after batch (each its own short transaction), every file no message has
    referenced for ``grace`` seconds and every upload left unfinished for ``max(grace,
    stale)``; ``on_batch`` sees each batch's figures. Returns the totals. Safe beside sends:
    a file a send references meanwhile is skipped or kept (queries/attachments.sql)."""
    files = removed = refused = 0
    while True:
        try:
            done = await attachments.delete_orphaned_attachments(
                pool, grace=grace, batch=batch, stale=stale
            )
        except NotFound:
            # A reference committed between this batch's snapshot and its delete (the foreign
            # key refused the delete): the next batch's snapshot sees it and skips the file.
            refused += 1
            if refused > 10:
                raise
            continue
        refused = 0
        if on_batch is not None:
            maybe = on_batch(done)
            if maybe is not None:
                await maybe
        if done.attachments == 0:
            break
        files += done.attachments
        removed += done.bytes
    return Collected.from_values({"attachments": files, "bytes": removed})
