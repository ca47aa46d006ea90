"""Pydantic records, one module per aggregate (see base.py)."""
