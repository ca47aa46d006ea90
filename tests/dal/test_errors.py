"""dal.errors.translate knows driver errors by their type (and SQLSTATE), never by the words
of their message: a lost connection or a closing pool is Unavailable because dal.database
raises it as such, a value the driver cannot encode is InvalidInput with the encoder's reason."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from dal.database import Connection, translating
from dal.errors import InvalidInput, Unavailable, translate
from dal.settings import Settings


def test_translate_takes_a_bare_interface_error_for_a_bug_whatever_it_says() -> None:
    for text in ("connection is closed", "pool is closing", "pool is closed"):
        assert translate(asyncpg.InterfaceError(text)) is None, text


async def test_value_the_driver_cannot_encode_is_invalid_input_without_the_value(
    pool: asyncpg.Pool[Any],
) -> None:
    too_big = 2**70

    with pytest.raises(InvalidInput) as caught, translating():
        await pool.fetchval("SELECT $1::int8", too_big)

    assert caught.value.message.startswith("invalid value: ")
    assert str(too_big) not in caught.value.message
    assert "range" in caught.value.message  # the encoder's reason


async def test_a_dropped_connection_is_unavailable(settings: Settings) -> None:
    # As dal.database drops a connection whose command was interrupted; whoever uses it next
    # (a transaction's ROLLBACK) meets a closed connection.
    conn = await asyncpg.connect(settings.database_url, connection_class=Connection)
    conn.terminate()

    with pytest.raises(Unavailable), translating():
        await conn.fetchval("SELECT 1")


async def test_a_transaction_whose_connection_was_dropped_is_unavailable(
    pool: asyncpg.Pool[Any],
) -> None:
    with pytest.raises(Unavailable), translating():
        async with pool.acquire() as conn, conn.transaction():
            conn.terminate()

    assert await pool.fetchval("SELECT 1") == 1  # the pool opens another one


async def test_a_closed_pool_is_unavailable(pool: asyncpg.Pool[Any]) -> None:
    await pool.close()

    with pytest.raises(Unavailable), translating():
        await pool.fetchval("SELECT 1")
