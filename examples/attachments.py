"""Attachments from Python: a file uploaded into a conversation as its bytes arrive, sent in a
message, read back as it streams, its thumbnail, and what a collection would delete.

Run it with `.venv/bin/python examples/attachments.py` after `make migrate`.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import secrets
from collections.abc import AsyncIterator

from PIL import Image

import dal
from dal.gateways import attachments as files
from dal.gateways import conversations, messages, users
from dal.records.conversations import ConversationDraft
from dal.records.messages import MessageDraft
from dal.records.users import UserDraft
from dal.usecases import attachments


async def pieces(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """Any async iterator of bytes will do: a file read piece by piece, an HTTP body..."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def main() -> None:
    picture = io.BytesIO()
    Image.new("RGB", (1600, 1200), "teal").save(picture, "JPEG")
    async with dal.connect() as db:
        user = await users.insert_user(db, draft=UserDraft(username=f"pics-{secrets.token_hex(3)}"))
        chat = await conversations.insert_conversation(
            db, user_id=user.id, draft=ConversationDraft(title="Photos")
        )
        uploaded = await attachments.upload_attachment(
            db,
            user_id=user.id,
            conversation_id=chat.id,
            name="hotel.jpg",
            declared_type="image/jpeg",
            content=pieces(picture.getvalue()),
            max_bytes=50 * 1024 * 1024,
        )
        photo = uploaded.attachment
        print(f"{photo.name}: {photo.media_type}, {photo.size} bytes, at {photo.url[:16]}...")

        # Send it: a file part whose url is the attachment's (the other members may read it now).
        part = {"type": "file", "mediaType": photo.media_type, "url": photo.url}
        text = {"type": "text", "text": "Our hotel"}
        draft = MessageDraft(role="user", parts=[text, part])
        await messages.insert_message(db, user_id=user.id, conversation_id=chat.id, draft=draft)

        # Read it back as it streams; then its thumbnail, made now and kept for next time.
        digest = hashlib.sha256()
        async for piece in attachments.read_attachment(
            db, user_id=user.id, attachment_id=photo.id, first=0, last=photo.size - 1
        ):
            digest.update(piece)
        print("same bytes:", digest.hexdigest() == photo.sha256)
        thumb = await attachments.attachment_thumbnail(
            db, user_id=user.id, attachment_id=photo.id, max_pixels=40_000_000
        )
        print(f"thumbnail: {thumb.media_type}, {thumb.width}x{thumb.height}")

        page = await files.list_attachments_of_conversation(
            db, user_id=user.id, conversation_id=chat.id
        )
        print("sent in the conversation:", [(a.name, a.seq) for a in page.items])
        # What `mnemo attachments gc` would delete now: files no message referenced for a day.
        garbage = await files.count_orphaned_attachments(db, grace=24 * 3600)
        print(f"to collect: {garbage.attachments} files")


if __name__ == "__main__":
    asyncio.run(main())
