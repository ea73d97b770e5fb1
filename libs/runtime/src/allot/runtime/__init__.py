"""Shared plumbing every Allot service stands on; one way to do each thing."""
