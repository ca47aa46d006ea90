"""Values past what a B-tree can index are stored all the same, or refused with 422: never a 500.

A B-tree entry holds at most about 2,700 bytes (a third of a page, after compression): random
text of 4,000 characters does not compress below that. tests/dal/test_large_values.py has the
saver's side (a value that does reach a B-tree limit is InvalidInput).
"""

from __future__ import annotations

import json
import secrets

from starlette.testclient import TestClient

from tests.app.conftest import Caller
from tests.app.test_threads import get_state, history, put_state


def incompressible(chars: int) -> str:
    return secrets.token_urlsafe(chars)[:chars]


def test_put_state_with_a_run_id_over_the_btree_limit_is_saved(
    client: TestClient, alice: Caller
) -> None:
    run_id = incompressible(4000)

    saved = put_state(client, alice, "t-1", {"n": 1}, metadata={"run_id": run_id})

    assert get_state(client, alice, "t-1")["metadata"]["run_id"] == run_id
    found = history(client, alice, "t-1", metadata=json.dumps({"run_id": run_id}))
    assert [item["checkpoint_id"] for item in found] == [saved["checkpoint_id"]]
