"""Mnemo as a LangGraph checkpointer: ``from dal.langgraph import AsyncpgSaver``.

- ``saver``: ``AsyncpgSaver`` (``BaseCheckpointSaver``) on the checkpoint gateways;
- ``group_commit``: saves made at once share one statement and one commit;
- ``codec``: how checkpoints are stored (serializer, inline rule, versions, building and
  decoding a checkpoint), for the saver and the HTTP API alike;
- ``json_values``: decoded values as JSON, for the HTTP API.
"""

from __future__ import annotations

from dal.langgraph.saver import AsyncpgSaver, owner_of

__all__ = ["AsyncpgSaver", "owner_of"]
