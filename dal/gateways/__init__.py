"""Typed gateways: one ``async def`` per named query, plus use cases that own a transaction."""
