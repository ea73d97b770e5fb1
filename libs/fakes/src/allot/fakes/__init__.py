"""Fakes of the ad platforms' APIs, built from their public documentation (development only)."""
