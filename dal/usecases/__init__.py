"""Use cases: one layer above the gateways. Each runs several gateways in one transaction, or a
gateway and the LangGraph codec; the app calls a use case or a single gateway."""
