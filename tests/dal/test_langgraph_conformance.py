"""LangGraph's public checkpointer conformance suite (langgraph-checkpoint-conformance)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES

from dal.langgraph import AsyncpgSaver


async def test_conformance_suite_detects_and_passes_all_eight_capabilities(pool: Any) -> None:
    @checkpointer_test(name="AsyncpgSaver")
    async def saver() -> AsyncIterator[AsyncpgSaver]:
        yield AsyncpgSaver(pool)

    report = await validate(saver)
    assert len(ALL_CAPABILITIES) == 8
    detected = {name for name, result in report.results.items() if result.detected}
    assert detected == {c.value for c in ALL_CAPABILITIES}
    failures = {
        name: result.failures for name, result in report.results.items() if not result.passed
    }
    assert failures == {}
    passed = sum(result.tests_passed for result in report.results.values())
    assert passed == 81  # langgraph-checkpoint-conformance 0.0.2; a newer one may add tests
