"""Pure ingest logic: no I/O, no clock (``now`` is an argument), no environment."""
