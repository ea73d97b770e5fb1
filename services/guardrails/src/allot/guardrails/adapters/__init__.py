"""Guardrails adapters: Postgres (all SQL of the service)."""
