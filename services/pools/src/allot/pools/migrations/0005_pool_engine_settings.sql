-- Per-pool engine settings (seed 001: "thresholds you define"). NULL means "the engine's default"
-- (allot.pools.domain.models.PoolSettings): a pool that never set a knob follows the engine's tuning.
-- The API validates the ranges (and builds PoolSettings with them); the checks here only keep bad rows out.
ALTER TABLE pools
    ADD COLUMN persistence_intervals int
        CHECK (persistence_intervals BETWEEN 1 AND 24),
    ADD COLUMN cooldown_hours double precision
        CHECK (cooldown_hours BETWEEN 0 AND 168),
    ADD COLUMN deadband_pct double precision
        CHECK (deadband_pct BETWEEN 0 AND 50),
    ADD COLUMN exploration_share double precision
        CHECK (exploration_share BETWEEN 0 AND 0.10),
    -- {"roas", "cpa", "frequency_risk", "engagement_decay"}; NULL: derived from optimization_metric.
    ADD COLUMN composite_weights jsonb
        CHECK (composite_weights IS NULL OR jsonb_typeof(composite_weights) = 'object');
