"""Allot pacing service: tracks spend against plan and proposes budget moves."""
