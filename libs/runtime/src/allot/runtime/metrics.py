"""Prometheus metrics shared by every service (exposed at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter("allot_events_consumed_total", "Events applied by a consumer", ["service", "topic"])
EVENTS_DUPLICATE = Counter("allot_events_duplicate_total", "Events skipped as already processed", ["service", "topic"])
EVENTS_FAILED = Counter(
    "allot_events_failed_total", "Batch attempts that failed and were retried", ["service", "topic", "kind"]
)
EVENTS_PRODUCED = Counter(
    "allot_events_produced_total", "Events relayed from the outbox to Kafka", ["service", "topic"]
)
DLQ_EVENTS = Counter("allot_dlq_events_total", "Records sent to a dead-letter topic", ["service", "topic", "reason"])
HANDLER_LATENCY = Histogram(
    "allot_handler_latency_seconds", "Time to apply one batch (transaction included)", ["service", "topic"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_SIZE = Histogram(
    "allot_batch_size", "Records per consumed batch", ["service"], buckets=(1, 5, 10, 50, 100, 250, 500, 1000)
)
CONSUMER_LAG = Gauge(
    "allot_consumer_lag", "High-water mark minus next offset, per partition", ["service", "topic", "partition"]
)
OUTBOX_PENDING = Gauge("allot_outbox_pending", "Rows waiting in the outbox after the last relay pass", ["service"])
HTTP_REQUESTS = Counter("allot_http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
