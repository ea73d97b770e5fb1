"""Executor schema: the action ledger and per-entity memory."""
