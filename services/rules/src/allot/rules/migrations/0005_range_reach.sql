-- Reach is not additive (allot.rules.domain.metrics, "Reach"): it is never summed across intervals or days.
-- 1. Each daily bucket counts the interval reports summed into it: a day gives a daily reach only when it holds
--    a single report (several hourly reports' reach do not add up).
ALTER TABLE metric_daily ADD COLUMN reports integer NOT NULL DEFAULT 0;
UPDATE metric_daily d SET reports = m.n
  FROM (SELECT workspace_id, entity_id, day, count(*)::integer AS n
          FROM metric_intervals GROUP BY workspace_id, entity_id, day) m
 WHERE d.workspace_id = m.workspace_id AND d.entity_id = m.entity_id AND d.day = m.day;

-- 2. The platform's deduplicated reach of each entity over the complete local days ending with `through`
--    (metrics.ingested.range_reach): the latest report that carries one wins, in the projection's order
--    (reported_at, event_id); a report without one leaves it as it is. NULL = that range was not reported.
CREATE TABLE range_reach (
    workspace_id  text NOT NULL,
    entity_id     text NOT NULL,
    through       date NOT NULL,
    yesterday     bigint,
    last_3d       bigint,
    last_7d       bigint,
    last_14d      bigint,
    last_30d      bigint,
    reported_at   timestamptz NOT NULL,
    event_id      uuid NOT NULL,
    PRIMARY KEY (workspace_id, entity_id)
);
