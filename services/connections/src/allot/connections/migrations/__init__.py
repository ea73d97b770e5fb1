"""Connections schema: connections (tokens sealed) and the ad accounts each one holds."""
