"""Typed gateways: one ``async def`` per operation, each running its named query (what combines
several gateways, or a gateway and the LangGraph codec, is a use case: ``dal.usecases``)."""
