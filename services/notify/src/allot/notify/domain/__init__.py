"""Notify domain: pure channel and subscription rules, message rendering, signatures, retry policy, URL checks,
deduplication, digests and quiet hours (no I/O, no clock)."""
