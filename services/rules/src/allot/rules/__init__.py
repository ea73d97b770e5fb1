"""Allot rules service: if-then automation rules evaluated against delivery metrics."""
