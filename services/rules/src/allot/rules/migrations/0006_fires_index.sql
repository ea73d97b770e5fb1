-- A rule's fires (executions whose result is requested, notified or auto_paused: domain.stored.FIRE_RESULTS) have
-- their own index, so the rules list's last fire and fires today read only fires: before, a trigger-mode rule
-- with many no-match executions and no fire had all of them walked on executions_rule.
CREATE INDEX executions_rule_fires ON executions (rule_id, started_at DESC)
    WHERE result IN ('requested', 'notified', 'auto_paused');
