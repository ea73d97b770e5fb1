-- One order for metrics.ingested reports in every service (allot.contracts.projection): an interval's report
-- is superseded by a greater (reported_at, event_id), an entity's by a greater (reported_at, interval_start,
-- event_id). Rows stored before hold the smallest values, so any real report at the same time supersedes them.
ALTER TABLE member_metrics ADD COLUMN event_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000';
ALTER TABLE entities ADD COLUMN interval_start timestamptz NOT NULL DEFAULT '-infinity';
ALTER TABLE entities ADD COLUMN event_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000';
