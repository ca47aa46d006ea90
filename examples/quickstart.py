"""Mnemo from Python, without HTTP: the gateways on a pool. Run it with the project's
virtualenv, `.venv/bin/python examples/quickstart.py`, on DATABASE_URL or the embedded
PostgreSQL of `make run` (run `make migrate` once first)."""

from __future__ import annotations

import asyncio
import secrets

import dal
from dal.gateways import conversations, messages, users
from dal.records.conversations import ConversationDraft
from dal.records.messages import MessageDraft, MessagePatch
from dal.records.users import UserDraft


async def main() -> None:
    async with dal.connect() as db:
        user = await users.insert_user(db, draft=UserDraft(username=f"demo-{secrets.token_hex(3)}"))
        chat = await conversations.insert_conversation(
            db, user_id=user.id, draft=ConversationDraft(title="Weather", tags=["demo"])
        )
        question = MessageDraft(role="user", parts=[{"type": "text", "text": "Weather in Paris?"}])
        await messages.insert_message(db, user_id=user.id, conversation_id=chat.id, draft=question)

        # An assistant answer, streamed: start it, append parts as they come, then finalize.
        answer = await messages.insert_message(
            db,
            user_id=user.id,
            conversation_id=chat.id,
            draft=MessageDraft(role="assistant", parts=[], status="streaming"),
        )
        ids = {"user_id": user.id, "conversation_id": chat.id, "message_id": answer.message.id}
        tool_call = {
            "type": "tool-getWeather",
            "toolCallId": "call-1",
            "state": "output-available",
            "input": {"city": "Paris"},
            "output": {"tempC": 18},
        }
        await messages.update_message(db, **ids, patch=MessagePatch(append_parts=[tool_call]))
        await messages.update_message(
            db,
            **ids,
            patch=MessagePatch(
                append_parts=[{"type": "text", "text": "18 °C and sunny."}], status="complete"
            ),
        )

        page = await messages.list_messages(db, user_id=user.id, conversation_id=chat.id, limit=50)
        for message in page.items:
            print(f"{message.seq} {message.role:9} {message.status:8} {message.content!r}")
        try:
            await conversations.get_conversation(db, user_id=user.id, conversation_id=user.id)
        except dal.NotFound as exc:
            print("not found:", exc)


if __name__ == "__main__":
    asyncio.run(main())
