"""Allot ingest service: reads delivery from Meta with read-only credentials and publishes metrics.ingested."""
