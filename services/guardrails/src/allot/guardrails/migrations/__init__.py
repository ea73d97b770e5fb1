"""Guardrails schema: workspace limits + audit, decisions, the spend ledger and per-entity change history."""
