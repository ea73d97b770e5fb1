"""Allot guardrails service: checks every requested change set against hard limits and signs approvals."""
