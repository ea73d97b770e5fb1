"""Pools schema: pools, members, allocation + simulation logs, outcomes, member metric projection, notes."""
