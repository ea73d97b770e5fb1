"""Adapters of the rules service (Postgres)."""
