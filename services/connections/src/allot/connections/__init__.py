"""Allot connections service: per-workspace platform connections; tokens stored and published sealed."""
