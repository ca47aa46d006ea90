"""Attachments through the gateways and the use case, on a real database: byte-exact round
trips at chunk boundaries, slices, deduplication, the quota under concurrency, the size limit
and interrupted uploads leaving nothing, who may read a file, references from file parts,
thumbnails, and the collection of unreferenced files beside concurrent sends."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import pytest
from PIL import Image

from dal.errors import ImageRefused, InvalidInput, NotFound, NotPermitted, TooLarge
from dal.gateways import attachments as gateway
from dal.gateways import members, messages
from dal.gateways.attachments import CHUNK_SIZE
from dal.records.attachments import Attachment, Uploaded
from dal.records.conversations import Conversation
from dal.records.members import MemberDraft
from dal.records.messages import MessageDraft, MessagePatch, referenced_attachments
from dal.records.users import User
from dal.settings import Settings
from dal.usecases import attachments
from tests.dal.conftest import make_conversation, make_user

if TYPE_CHECKING:
    from tests.test_session_state import SessionRun

MAX = 64 * CHUNK_SIZE


async def pieces(data: bytes, size: int = 100_003) -> AsyncIterator[bytes]:
    """``data`` as a client sends it: in pieces that match no chunk boundary."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def upload(
    pool: Any,
    user: User,
    conversation: Conversation,
    data: bytes,
    *,
    name: str = "file.bin",
    declared: str | None = "application/octet-stream",
    max_bytes: int = MAX,
    quota: int = 0,
) -> Uploaded:
    return await attachments.upload_attachment(
        pool,
        user_id=user.id,
        conversation_id=conversation.id,
        name=name,
        declared_type=declared,
        content=pieces(data),
        max_bytes=max_bytes,
        quota=quota,
    )


async def read(pool: Any, user: User, attachment_id: UUID, first: int = 0, last: int = -1) -> bytes:
    found = await gateway.get_attachment(pool, user_id=user.id, attachment_id=attachment_id)
    end = found.size - 1 if last < 0 else last
    return b"".join(
        [
            piece
            async for piece in attachments.read_attachment(
                pool, user_id=user.id, attachment_id=attachment_id, first=first, last=end
            )
        ]
    )


async def stored(pool: Any) -> tuple[int, int, int]:
    """Rows of attachments, chunks, and the sum of every user's usage."""
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM attachments) AS files,"
        " (SELECT count(*) FROM attachment_chunks) AS chunks,"
        " (SELECT coalesce(sum(bytes), 0) FROM attachment_usage) AS used"
    )
    return row["files"], row["chunks"], row["used"]


def file_part(attachment: Attachment, **extra: Any) -> dict[str, Any]:
    return {"type": "file", "mediaType": attachment.media_type, "url": attachment.url, **extra}


async def send(pool: Any, user: User, conversation: Conversation, *parts: dict[str, Any]) -> Any:
    appended = await messages.insert_message(
        pool,
        user_id=user.id,
        conversation_id=conversation.id,
        draft=MessageDraft(role="user", parts=[{"type": "text", "text": "see"}, *parts]),
    )
    return appended.message


async def join(pool: Any, owner: User, conversation: Conversation, *users: User) -> None:
    for user in users:
        await members.insert_member(
            pool,
            user_id=owner.id,
            conversation_id=conversation.id,
            draft=MemberDraft(user_id=user.id, role="member"),
        )


@pytest.fixture
async def chat(pool: Any, alice: User) -> Conversation:
    return await make_conversation(pool, alice)


# --- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size",
    [0, 1, 1000, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 17],
    ids=lambda n: f"{n}B",
)
async def test_bytes_come_back_exactly_whatever_the_size(
    pool: Any, alice: User, chat: Conversation, size: int
) -> None:
    data = os.urandom(size)
    uploaded = await upload(pool, alice, chat, data)
    found = uploaded.attachment
    assert uploaded.created
    assert (found.size, found.sha256) == (size, hashlib.sha256(data).hexdigest())
    assert found.url == f"/v1/attachments/{found.id}"
    back = await read(pool, alice, found.id) if size else b""
    assert hashlib.sha256(back).digest() == hashlib.sha256(data).digest()
    chunks = await pool.fetch(
        "SELECT n, octet_length(data) AS bytes FROM attachment_chunks WHERE attachment_id = $1"
        " ORDER BY n",
        found.id,
    )
    assert [c["n"] for c in chunks] == list(range(-(-size // CHUNK_SIZE)))
    assert all(c["bytes"] == CHUNK_SIZE for c in chunks[:-1])
    assert (
        await pool.fetchval("SELECT bytes FROM attachment_usage WHERE user_id = $1", alice.id)
        == (size if size else None)
        or size == 0
    )


async def test_slices_come_back_exactly_across_chunk_boundaries(
    pool: Any, alice: User, chat: Conversation
) -> None:
    data = os.urandom(5 * CHUNK_SIZE + 123)
    found = (await upload(pool, alice, chat, data)).attachment
    size = len(data)
    for first, last in [
        (0, 0),
        (0, 99),
        (CHUNK_SIZE - 10, CHUNK_SIZE + 10),
        (CHUNK_SIZE, 2 * CHUNK_SIZE - 1),
        (123_456, 4 * CHUNK_SIZE + 5),
        (size - 50, size - 1),
        (size - 1, size - 1),
        (0, size - 1),
    ]:
        assert await read(pool, alice, found.id, first, last) == data[first : last + 1]


async def test_media_type_is_sniffed_and_a_mismatch_recorded(
    pool: Any, alice: User, chat: Conversation
) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, "PNG")
    found = (await upload(pool, alice, chat, buffer.getvalue(), declared="image/png")).attachment
    assert (found.media_type, found.declared_type, found.type_mismatch) == (
        "image/png",
        "image/png",
        False,
    )
    html = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"
    lying = (await upload(pool, alice, chat, html, declared="image/png")).attachment
    assert lying.media_type == "text/html"
    assert (lying.declared_type, lying.type_mismatch) == ("image/png", True)


# --- deduplication, quota, limits ---------------------------------------------------------


async def test_the_same_bytes_uploaded_twice_are_stored_once(
    pool: Any, alice: User, bob: User, chat: Conversation
) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 5)
    first = await upload(pool, alice, chat, data, name="a.bin")
    other_chat = await make_conversation(pool, alice)
    again = await upload(pool, alice, other_chat, data, name="b.bin")
    assert (first.created, again.created) == (True, False)
    assert again.attachment == first.attachment  # the first upload's name and all
    assert await stored(pool) == (1, 3, len(data))
    # another user's identical bytes are their own file
    bobs_chat = await make_conversation(pool, bob)
    bobs = await upload(pool, bob, bobs_chat, data)
    assert bobs.created and bobs.attachment.id != first.attachment.id
    assert await stored(pool) == (2, 6, 2 * len(data))


async def test_identical_uploads_at_once_end_as_one_file(
    pool: Any, alice: User, chat: Conversation
) -> None:
    data = os.urandom(CHUNK_SIZE + 1)
    results = await asyncio.gather(*(upload(pool, alice, chat, data) for _ in range(6)))
    assert len({r.attachment.id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert await stored(pool) == (1, 2, len(data))


async def test_a_file_over_the_size_limit_stops_at_once_and_leaves_nothing(
    pool: Any, alice: User, chat: Conversation
) -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while True:
            sent += 65536
            yield b"x" * 65536

    with pytest.raises(TooLarge) as caught:
        await attachments.upload_attachment(
            pool,
            user_id=alice.id,
            conversation_id=chat.id,
            name="big",
            declared_type=None,
            content=endless(),
            max_bytes=3 * CHUNK_SIZE,
        )
    assert caught.value.code == "attachment_too_large"
    assert 3 * CHUNK_SIZE < sent <= 3 * CHUNK_SIZE + 65536  # read no further than the limit
    assert await stored(pool) == (0, 0, 0)


async def test_an_interrupted_upload_leaves_nothing(
    pool: Any, alice: User, chat: Conversation
) -> None:
    class Gone(Exception):
        pass

    async def vanishing() -> AsyncIterator[bytes]:
        yield os.urandom(CHUNK_SIZE)
        yield os.urandom(CHUNK_SIZE)
        raise Gone

    with pytest.raises(Gone):
        await attachments.upload_attachment(
            pool,
            user_id=alice.id,
            conversation_id=chat.id,
            name="half",
            declared_type=None,
            content=vanishing(),
            max_bytes=MAX,
        )
    assert await stored(pool) == (0, 0, 0)


async def test_a_cancelled_upload_leaves_nothing(
    pool: Any, alice: User, chat: Conversation
) -> None:
    started = asyncio.Event()

    async def stalling() -> AsyncIterator[bytes]:
        yield os.urandom(CHUNK_SIZE + 1)
        started.set()
        await asyncio.sleep(3600)
        yield b""

    task = asyncio.ensure_future(
        attachments.upload_attachment(
            pool,
            user_id=alice.id,
            conversation_id=chat.id,
            name="stalled",
            declared_type=None,
            content=stalling(),
            max_bytes=MAX,
        )
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):  # the shielded clean-up runs on after the cancellation
        if await stored(pool) == (0, 0, 0):
            break
        await asyncio.sleep(0.02)
    assert await stored(pool) == (0, 0, 0)


async def test_the_quota_holds_and_a_refused_upload_leaves_nothing(
    pool: Any, alice: User, chat: Conversation
) -> None:
    quota = 3 * CHUNK_SIZE
    await upload(pool, alice, chat, os.urandom(2 * CHUNK_SIZE), quota=quota)
    with pytest.raises(TooLarge) as caught:
        await upload(pool, alice, chat, os.urandom(CHUNK_SIZE + 1), quota=quota)
    assert caught.value.code == "quota_exceeded"
    assert await stored(pool) == (1, 2, 2 * CHUNK_SIZE)
    # exactly up to the quota is fine
    await upload(pool, alice, chat, os.urandom(CHUNK_SIZE), quota=quota)
    assert await stored(pool) == (2, 3, quota)


async def test_concurrent_uploads_never_pass_the_quota_together(
    pool: Any, alice: User, chat: Conversation
) -> None:
    quota = 5 * CHUNK_SIZE
    results = await asyncio.gather(
        *(upload(pool, alice, chat, os.urandom(2 * CHUNK_SIZE), quota=quota) for _ in range(6)),
        return_exceptions=True,
    )
    ok = [r for r in results if isinstance(r, Uploaded)]
    refused = [r for r in results if isinstance(r, TooLarge)]
    assert len(ok) + len(refused) == 6
    # Reserved chunk by chunk: uploads that interleave may refuse each other, but never pass
    # the quota together, and a refused one gives back what it reserved.
    assert len(ok) <= 2
    assert await stored(pool) == (len(ok), 2 * len(ok), 2 * CHUNK_SIZE * len(ok))
    while len(ok) < 2:
        ok.append(await upload(pool, alice, chat, os.urandom(2 * CHUNK_SIZE), quota=quota))
    assert await stored(pool) == (2, 4, 4 * CHUNK_SIZE)


async def test_only_a_member_who_may_append_uploads(
    pool: Any, alice: User, bob: User, chat: Conversation
) -> None:
    with pytest.raises(NotFound):
        await upload(pool, bob, chat, b"not a member")
    await join(pool, alice, chat, bob)
    await pool.execute(
        "DELETE FROM conversation_rights WHERE role = 'member' AND action = 'append'"
    )
    try:
        with pytest.raises(NotPermitted):
            await upload(pool, bob, chat, b"may not append")
    finally:
        await pool.execute(
            "INSERT INTO conversation_rights (role, action) VALUES ('member', 'append')"
        )
    assert await stored(pool) == (0, 0, 0)


# --- who may read, references -----------------------------------------------------------


async def test_a_file_is_its_uploaders_and_its_referencing_conversations_members(
    pool: Any, alice: User, bob: User, chat: Conversation
) -> None:
    carol = await make_user(pool)
    found = (await upload(pool, alice, chat, b"shared later")).attachment
    await join(pool, alice, chat, bob)
    # uploaded but not sent: its uploader's alone, even for members of the chat
    with pytest.raises(NotFound):
        await gateway.get_attachment(pool, user_id=bob.id, attachment_id=found.id)
    message = await send(pool, alice, chat, file_part(found))
    assert (await gateway.get_attachment(pool, user_id=bob.id, attachment_id=found.id)) == found
    assert await read(pool, bob, found.id) == b"shared later"
    with pytest.raises(NotFound):
        await gateway.get_attachment(pool, user_id=carol.id, attachment_id=found.id)
    assert (
        await gateway.list_attachment_chunks(
            pool, user_id=carol.id, attachment_id=found.id, first=0, last=10
        )
        == []
    )
    # a former member reads it no more; its uploader still does
    await members.delete_member_self(pool, user_id=bob.id, conversation_id=chat.id)
    with pytest.raises(NotFound):
        await gateway.get_attachment(pool, user_id=bob.id, attachment_id=found.id)
    with pytest.raises(NotFound):
        await read(pool, bob, found.id)
    assert await read(pool, alice, found.id) == b"shared later"
    listed = await gateway.list_attachments_of_message(
        pool, user_id=alice.id, conversation_id=chat.id, message_id=message.id
    )
    assert [(a.id, a.message_id, a.seq) for a in listed] == [(found.id, message.id, message.seq)]


async def test_a_file_part_references_by_url_or_attachment_id(
    pool: Any, alice: User, bob: User, chat: Conversation
) -> None:
    one = (await upload(pool, alice, chat, b"one")).attachment
    two = (await upload(pool, alice, chat, b"two")).attachment
    three = (await upload(pool, alice, chat, b"three")).attachment
    parts = [
        file_part(one),
        {
            "type": "file",
            "mediaType": "x/y",
            "url": f"https://api.example.com/v1/attachments/{two.id}?x=1",
        },
        {"type": "file", "mediaType": "x/y", "url": "data:,hi", "attachmentId": str(three.id)},
        {"type": "file", "mediaType": "x/y", "url": "https://elsewhere.example.com/a.png"},
    ]
    assert referenced_attachments(parts) == sorted([one.id, two.id, three.id])
    message = await send(pool, alice, chat, *parts)
    listed = await gateway.list_attachments_of_message(
        pool, user_id=alice.id, conversation_id=chat.id, message_id=message.id
    )
    assert [a.id for a in listed] == sorted([one.id, two.id, three.id])
    page = await gateway.list_attachments_of_conversation(
        pool, user_id=alice.id, conversation_id=chat.id, limit=2
    )
    assert len(page.items) == 2 and page.next_cursor
    rest = await gateway.list_attachments_of_conversation(
        pool, user_id=alice.id, conversation_id=chat.id, limit=2, cursor=page.next_cursor
    )
    assert [a.id for a in [*page.items, *rest.items]] == [a.id for a in listed]
    assert rest.next_cursor is None
    with pytest.raises(NotFound):
        await gateway.list_attachments_of_conversation(
            pool, user_id=bob.id, conversation_id=chat.id
        )


async def test_a_file_the_sender_may_not_read_is_refused_and_nothing_stored(
    pool: Any, alice: User, bob: User, chat: Conversation
) -> None:
    bobs_chat = await make_conversation(pool, bob)
    secret = (await upload(pool, bob, bobs_chat, b"bob's")).attachment
    last_seq = "SELECT last_seq FROM conversations WHERE id = $1"
    before = await pool.fetchval(last_seq, chat.id)
    for part in (
        file_part(secret),
        {"type": "file", "mediaType": "a/b", "url": "x", "attachmentId": str(uuid4())},
    ):
        with pytest.raises(NotFound) as caught:
            await send(pool, alice, chat, part)
        assert "attachment" in caught.value.message
    assert await pool.fetchval(last_seq, chat.id) == before
    assert await pool.fetchval("SELECT count(*) FROM message_attachments") == 0


def test_a_file_part_whose_attachment_id_and_url_disagree_is_refused() -> None:
    one, two = uuid4(), uuid4()
    with pytest.raises(ValueError, match="different attachments"):
        MessageDraft(
            role="user",
            parts=[
                {
                    "type": "file",
                    "mediaType": "a/b",
                    "url": f"/v1/attachments/{one}",
                    "attachmentId": str(two),
                }
            ],
        )
    with pytest.raises(ValueError, match="attachment's id"):
        MessageDraft(
            role="user",
            parts=[{"type": "file", "mediaType": "a/b", "url": "x", "attachmentId": "nope"}],
        )


async def test_edits_add_references_and_retraction_drops_them(
    pool: Any, alice: User, chat: Conversation
) -> None:
    one = (await upload(pool, alice, chat, b"one")).attachment
    two = (await upload(pool, alice, chat, b"two")).attachment
    message = await send(pool, alice, chat, file_part(one))
    ids = {"user_id": alice.id, "conversation_id": chat.id, "message_id": message.id}
    await messages.update_message(pool, **ids, patch=MessagePatch(parts=[file_part(two)]))
    listed = await gateway.list_attachments_of_message(pool, **ids)
    # the earlier version still holds the first file
    assert {a.id for a in listed} == {one.id, two.id}
    orphaned = "SELECT id FROM attachments WHERE orphaned_at IS NOT NULL ORDER BY id"
    assert await pool.fetch(orphaned) == []
    await messages.delete_own_message(pool, **ids)
    assert await gateway.list_attachments_of_message(pool, **ids) == []
    assert [r["id"] for r in await pool.fetch(orphaned)] == sorted([one.id, two.id])


async def test_a_file_referenced_elsewhere_stays_referenced_when_one_message_goes(
    pool: Any, alice: User, chat: Conversation
) -> None:
    one = (await upload(pool, alice, chat, b"one")).attachment
    first = await send(pool, alice, chat, file_part(one))
    await send(pool, alice, chat, file_part(one))
    await messages.delete_message(
        pool, user_id=alice.id, conversation_id=chat.id, message_id=first.id
    )
    assert await pool.fetchval("SELECT orphaned_at FROM attachments WHERE id = $1", one.id) is None


# --- collection -------------------------------------------------------------------------


async def age(pool: Any, attachment_id: UUID, seconds: float) -> None:
    """Move a file's orphaned_at back (the test's clock)."""
    await pool.execute(
        "UPDATE attachments SET orphaned_at = orphaned_at - make_interval(secs => $2)"
        " WHERE id = $1",
        attachment_id,
        seconds,
    )


async def test_collection_takes_only_files_unreferenced_past_the_grace_period(
    pool: Any, alice: User, chat: Conversation
) -> None:
    kept_young = (await upload(pool, alice, chat, b"young")).attachment
    old = (await upload(pool, alice, chat, b"old")).attachment
    sent = (await upload(pool, alice, chat, b"sent")).attachment
    await send(pool, alice, chat, file_part(sent))
    await age(pool, old.id, 3600)
    await age(pool, kept_young.id, 3599 - 60)
    dry = await gateway.count_orphaned_attachments(pool, grace=3600 - 30)
    assert (dry.attachments, dry.bytes) == (1, 3)
    assert await stored(pool) == (3, 3, 12)  # the dry run changed nothing
    done = await attachments.collect_attachments(pool, grace=3600 - 30, batch=1)
    assert (done.attachments, done.bytes) == (1, 3)
    left = {r["id"] for r in await pool.fetch("SELECT id FROM attachments")}
    assert left == {kept_young.id, sent.id}
    assert await stored(pool) == (2, 2, 9)


async def test_collection_abandons_uploads_left_unfinished(
    pool: Any, alice: User, chat: Conversation
) -> None:
    pending = await gateway.insert_attachment(
        pool, user_id=alice.id, conversation_id=chat.id, name="x", declared_type=None
    )
    await gateway.insert_attachment_chunk(
        pool, user_id=alice.id, attachment_id=pending, n=0, data=b"abc"
    )
    done = await attachments.collect_attachments(pool, grace=0, stale=3600)
    assert done.attachments == 0  # running uploads are left alone, even with no grace
    await age(pool, pending, 3601)
    done = await attachments.collect_attachments(pool, grace=0, stale=3600)
    assert (done.attachments, done.bytes) == (1, 3)
    assert await stored(pool) == (0, 0, 0)
    with pytest.raises(NotFound):
        await gateway.insert_attachment_chunk(
            pool, user_id=alice.id, attachment_id=pending, n=1, data=b"d"
        )


async def test_collection_skips_a_file_an_open_send_references(
    pool: Any, alice: User, chat: Conversation
) -> None:
    found = (await upload(pool, alice, chat, b"being sent")).attachment
    await age(pool, found.id, 10)
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await send(conn, alice, chat, file_part(found))
        done = await asyncio.wait_for(attachments.collect_attachments(pool, grace=1), timeout=10)
        assert done.attachments == 0
        await tx.commit()
    assert await read(pool, alice, found.id) == b"being sent"
    assert (await attachments.collect_attachments(pool, grace=1)).attachments == 0


async def test_collection_beside_concurrent_sends_never_loses_a_referenced_file(
    pool: Any, alice: User, chat: Conversation
) -> None:
    """Rounds of a send racing a collection with no grace: whichever wins, a message that was
    stored has its file, and a file that went has no message."""
    for _ in range(15):
        found = (await upload(pool, alice, chat, os.urandom(64))).attachment
        await age(pool, found.id, 5)
        sent, _ = await asyncio.gather(
            send(pool, alice, chat, file_part(found)),
            attachments.collect_attachments(pool, grace=0),
            return_exceptions=True,
        )
        exists = await pool.fetchval("SELECT count(*) FROM attachments WHERE id = $1", found.id)
        if isinstance(sent, BaseException):
            assert isinstance(sent, NotFound), sent
            assert exists == 0
        else:
            assert exists == 1
            assert await read(pool, alice, found.id)
    dangling = await pool.fetchval(
        "SELECT count(*) FROM message_attachments AS r"
        " WHERE NOT EXISTS (SELECT 1 FROM attachments AS a WHERE a.id = r.attachment_id)"
    )
    assert dangling == 0


# --- thumbnails -------------------------------------------------------------------------


def image_bytes(kind: str, size: tuple[int, int] = (800, 600)) -> bytes:
    buffer = io.BytesIO()
    mode = "RGBA" if kind == "PNG" else "RGB"
    picture = Image.new(mode, size, (200, 30, 30))
    if kind == "GIF":
        frames = [picture, Image.new(mode, size, (30, 200, 30))]
        frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    else:
        picture.save(buffer, kind)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["JPEG", "PNG", "WEBP", "GIF"])
async def test_a_thumbnail_is_made_once_for_each_image_kind(
    pool: Any, alice: User, chat: Conversation, kind: str
) -> None:
    found = (await upload(pool, alice, chat, image_bytes(kind), declared=None)).attachment
    assert found.media_type == f"image/{kind.lower()}"
    made = await attachments.attachment_thumbnail(
        pool, user_id=alice.id, attachment_id=found.id, max_pixels=10**7
    )
    assert made.data is not None and made.media_type in ("image/webp", "image/jpeg")
    with Image.open(io.BytesIO(made.data)) as thumb:
        assert max(thumb.size) <= 256
        assert thumb.size == (made.width, made.height) == (256, 192)
    again = await attachments.attachment_thumbnail(
        pool, user_id=alice.id, attachment_id=found.id, max_pixels=10**7
    )
    assert again.data == made.data
    assert await pool.fetchval("SELECT count(*) FROM attachment_thumbnails") == 1


async def test_a_decompression_bomb_and_a_corrupt_image_are_refused(
    pool: Any, alice: User, chat: Conversation
) -> None:
    bomb = (await upload(pool, alice, chat, image_bytes("PNG", (4000, 3000)))).attachment
    with pytest.raises(ImageRefused):
        await attachments.attachment_thumbnail(
            pool, user_id=alice.id, attachment_id=bomb.id, max_pixels=1_000_000
        )
    corrupt_bytes = image_bytes("JPEG")[:400]
    corrupt = (await upload(pool, alice, chat, corrupt_bytes)).attachment
    assert corrupt.media_type == "image/jpeg"
    for _ in range(2):  # refused once, then from what was kept
        with pytest.raises(ImageRefused):
            await attachments.attachment_thumbnail(
                pool, user_id=alice.id, attachment_id=corrupt.id, max_pixels=10**7
            )
    refusals = await pool.fetchval(
        "SELECT count(*) FROM attachment_thumbnails WHERE refused IS NOT NULL"
    )
    assert refusals == 2


async def test_no_thumbnail_of_a_file_that_is_not_an_image(
    pool: Any, alice: User, bob: User, chat: Conversation
) -> None:
    text = (await upload(pool, alice, chat, b"just text\n" * 10)).attachment
    with pytest.raises(NotFound):
        await attachments.attachment_thumbnail(
            pool, user_id=alice.id, attachment_id=text.id, max_pixels=10**7
        )
    picture = (await upload(pool, alice, chat, image_bytes("PNG"))).attachment
    with pytest.raises(NotFound):
        await attachments.attachment_thumbnail(
            pool, user_id=bob.id, attachment_id=picture.id, max_pixels=10**7
        )


def _used(values: Iterable[Any]) -> None:
    """Keep imports some tests only need under TYPE_CHECKING honest."""
    del values


async def session_exercise(pool: Any, settings: Settings, run: SessionRun) -> None:
    """Attachments, for tests/test_session_state.py."""
    user = await run.one("make_user", lambda: make_user(pool))
    chat = await run.one("make_conversation", lambda: make_conversation(pool, user))
    picture = image_bytes("PNG", (40, 30))
    found = (
        await run.one("upload_attachment", lambda: upload(pool, user, chat, picture))
    ).attachment
    pending = await run.one(
        "insert_attachment",
        lambda: gateway.insert_attachment(
            pool, user_id=user.id, conversation_id=chat.id, name="p", declared_type=None
        ),
    )
    ids = {"user_id": user.id, "attachment_id": found.id}
    message = await run.one("send", lambda: send(pool, user, chat, file_part(found)))

    async def too_large() -> None:
        await upload(pool, user, chat, os.urandom(CHUNK_SIZE + 1), max_bytes=CHUNK_SIZE)

    await run(
        [
            ("upload_attachment again", lambda: upload(pool, user, chat, picture)),
            ("upload_attachment too large", too_large),
            ("upload_attachment over quota", lambda: upload(pool, user, chat, b"q" * 9, quota=1)),
            (
                "insert_attachment_chunk",
                lambda: gateway.insert_attachment_chunk(
                    pool, user_id=user.id, attachment_id=pending, n=0, data=b"abc"
                ),
            ),
            (
                "delete_attachment_upload",
                lambda: gateway.delete_attachment_upload(
                    pool, user_id=user.id, attachment_id=pending
                ),
            ),
            (
                "update_attachment_ready missing",
                lambda: gateway.update_attachment_ready(
                    pool,
                    user_id=user.id,
                    attachment_id=pending,
                    sha256=b"0" * 32,
                    media_type="a/b",
                    type_mismatch=False,
                ),
            ),
            ("get_attachment", lambda: gateway.get_attachment(pool, **ids)),
            ("read_attachment_bytes", lambda: attachments.read_attachment_bytes(pool, **ids)),
            (
                "list_attachment_chunks",
                lambda: gateway.list_attachment_chunks(pool, **ids, first=0, last=9),
            ),
            (
                "attachment_thumbnail",
                lambda: attachments.attachment_thumbnail(pool, **ids, max_pixels=10**6),
            ),
            ("get_attachment_thumbnail", lambda: gateway.get_attachment_thumbnail(pool, **ids)),
            (
                "list_attachments_of_conversation",
                lambda: gateway.list_attachments_of_conversation(
                    pool, user_id=user.id, conversation_id=chat.id
                ),
            ),
            (
                "list_attachments_of_message",
                lambda: gateway.list_attachments_of_message(
                    pool, user_id=user.id, conversation_id=chat.id, message_id=message.id
                ),
            ),
            (
                "count_orphaned_attachments",
                lambda: gateway.count_orphaned_attachments(pool, grace=0),
            ),
            (
                "delete_orphaned_attachments",
                lambda: gateway.delete_orphaned_attachments(pool, grace=0),
            ),
            ("collect_attachments", lambda: attachments.collect_attachments(pool, grace=0)),
        ]
    )
    _used([InvalidInput])
