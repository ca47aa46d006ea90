"""The saver refuses keys it cannot store (thread ids, namespaces, checkpoint and task ids,
channels and versions past what a B-tree entry holds, NUL, lone surrogates) with a clear
error, before writing anything: an InvalidInput that is also a ValueError (LangGraph's
savers raise ValueError for a bad config)."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.base import ChannelVersions

from dal.errors import InvalidInput
from dal.langgraph import AsyncpgSaver

CHECKPOINT_ID = "1f0c0000-0000-6000-8000-000000000001"


async def put(saver: AsyncpgSaver, configurable: dict[str, Any], **checkpoint: Any) -> Any:
    values = checkpoint.pop("values", {"n": 1})
    versions: ChannelVersions = {c: saver.get_next_version(None, None) for c in values}
    return await saver.aput(
        {"configurable": {"checkpoint_ns": "", **configurable}},  # type: ignore[typeddict-item]
        {  # type: ignore[typeddict-item]
            "v": 4,
            "id": checkpoint.pop("id", CHECKPOINT_ID),
            "ts": "2026-11-23T10:00:00+00:00",
            "channel_values": values,
            "channel_versions": checkpoint.pop("versions", versions),
            "versions_seen": {},
            "updated_channels": sorted(values),
        },
        {"source": "loop", "step": 0, "parents": {}},
        checkpoint.pop("new_versions", versions),
    )


async def rows(pool: Any) -> int:
    return int(
        await pool.fetchval(
            "SELECT (SELECT count(*) FROM threads) + (SELECT count(*) FROM checkpoints)"
            " + (SELECT count(*) FROM checkpoint_blobs) + (SELECT count(*) FROM checkpoint_writes)"
        )
    )


@pytest.mark.parametrize(
    ("configurable", "checkpoint", "message"),
    [
        ({"thread_id": "t" * 3000}, {}, "thread id"),
        ({"thread_id": "線" * 167}, {}, "thread id"),  # 501 bytes
        ({"thread_id": ""}, {}, "thread id"),
        ({"thread_id": "a\x00b"}, {}, "NUL"),
        ({"thread_id": "a\ud800"}, {}, "UTF-8"),
        ({"thread_id": "t", "checkpoint_ns": "n" * 3000}, {}, "checkpoint_ns"),
        ({"thread_id": "t"}, {"id": "c" * 3000}, "checkpoint id"),
        ({"thread_id": "t"}, {"values": {"c" * 3000: [1]}}, "channel"),
        ({"thread_id": "t"}, {"values": {"n": [1]}, "new_versions": {"n": "9" * 3000}}, "version"),
    ],
    ids=[
        "long-thread",
        "thread-501-bytes",
        "empty-thread",
        "nul",
        "surrogate",
        "long-ns",
        "long-checkpoint-id",
        "long-channel",
        "long-version",
    ],
)
async def test_aput_key_it_cannot_store_raises_invalid_input_and_writes_nothing(
    pool: Any, configurable: dict[str, Any], checkpoint: dict[str, Any], message: str
) -> None:
    saver = AsyncpgSaver(pool)
    if "values" in checkpoint:  # a list value goes to a blob, keyed by its channel
        checkpoint.setdefault("new_versions", {c: "1" for c in checkpoint["values"]})

    with pytest.raises(InvalidInput, match=message) as raised:
        await put(saver, configurable, **checkpoint)

    assert isinstance(raised.value, ValueError)
    assert await rows(pool) == 0


@pytest.mark.parametrize(
    ("task_id", "channel", "message"),
    [("t" * 3000, "n", "task id"), ("task", "c" * 3000, "channel")],
    ids=["long-task-id", "long-channel"],
)
async def test_aput_writes_key_it_cannot_store_raises_invalid_input(
    pool: Any, task_id: str, channel: str, message: str
) -> None:
    saver = AsyncpgSaver(pool)
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c"}}

    with pytest.raises(InvalidInput, match=message) as raised:
        await saver.aput_writes(config, [(channel, 1)], task_id=task_id)  # type: ignore[arg-type]

    assert isinstance(raised.value, ValueError)
    assert await rows(pool) == 0


async def test_keys_at_the_limits_are_stored_and_read_back(pool: Any) -> None:
    saver = AsyncpgSaver(pool)
    thread_id, ns = "線" * 166, "n" * 1000  # 498 and 1,000 bytes
    checkpoint_id = "c" * 200
    saved = await put(
        saver,
        {"thread_id": thread_id, "checkpoint_ns": ns},
        id=checkpoint_id,
        values={"ch" * 250: [1]},
    )
    await saver.aput_writes(saved, [("w" * 500, 1)], task_id="t" * 200)

    got = await saver.aget_tuple(saved)
    assert got is not None and got.checkpoint["channel_values"] == {"ch" * 250: [1]}
    assert got.pending_writes == [("t" * 200, "w" * 500, 1)]
    # A thread id nothing can have is simply not found.
    assert await saver.aget_tuple({"configurable": {"thread_id": "t" * 3000}}) is None


async def test_acopy_thread_to_an_id_it_cannot_store_raises_invalid_input(pool: Any) -> None:
    saver = AsyncpgSaver(pool)
    await put(saver, {"thread_id": "src"})

    with pytest.raises(InvalidInput, match="thread id"):
        await saver.acopy_thread("src", "t" * 3000)

    assert await pool.fetchval("SELECT count(*) FROM threads") == 1
