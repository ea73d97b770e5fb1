-- One order for metrics.ingested reports in every service (allot.contracts.projection): an interval's report
-- is superseded by a greater (reported_at, event_id), an entity's by a greater (reported_at, interval_start,
-- event_id). Rows stored before hold the smallest event id, so any real report at the same time supersedes them.
ALTER TABLE metric_intervals ADD COLUMN event_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000';
ALTER TABLE entities ADD COLUMN event_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000';
