-- Flight plans: one campaign's budget, flight, channels/deals (jsonb), curve, thresholds and pacing state.
CREATE TABLE IF NOT EXISTS flight_plans (
    plan_id             text PRIMARY KEY,
    workspace_id        text NOT NULL,
    campaign_id         text NOT NULL,
    name                text NOT NULL DEFAULT '',
    currency            text NOT NULL,
    total_budget_cents  bigint NOT NULL CHECK (total_budget_cents >= 0),
    flight_start        timestamptz NOT NULL,
    flight_end          timestamptz NOT NULL,
    channels            jsonb NOT NULL,
    deals               jsonb NOT NULL DEFAULT '[]',
    curve               jsonb NOT NULL,
    thresholds          jsonb NOT NULL,
    requires_approval   boolean NOT NULL DEFAULT false,   -- the PACING_ADJUSTMENT approval stage
    snapshot_interval_s integer NOT NULL CHECK (snapshot_interval_s > 0),
    escalate_after_s    integer NOT NULL CHECK (escalate_after_s >= 0),
    state               text NOT NULL DEFAULT 'ACTIVE' CHECK (state IN ('ACTIVE', 'PACING_HOLD', 'PAUSED')),
    held_since          timestamptz,
    last_slot_at        timestamptz,                     -- latest slot a snapshot was taken for
    created_at          timestamptz NOT NULL,            -- service clock (may be simulated)
    updated_at          timestamptz NOT NULL,
    created_by          text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS flight_plans_workspace_campaign ON flight_plans (workspace_id, campaign_id);
CREATE INDEX IF NOT EXISTS flight_plans_schedulable ON flight_plans (plan_id) WHERE state IN ('ACTIVE', 'PACING_HOLD');

-- Which platform entities count toward which channel / deal of a plan (rewritten when the plan changes).
CREATE TABLE IF NOT EXISTS plan_entities (
    plan_id        text NOT NULL REFERENCES flight_plans (plan_id) ON DELETE CASCADE,
    workspace_id   text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('channel', 'deal')),
    name           text NOT NULL,                       -- channel name or deal id
    platform       text NOT NULL,
    ad_account_id  text NOT NULL,
    entity_type    text NOT NULL,
    entity_id      text NOT NULL,
    PRIMARY KEY (plan_id, kind, platform, entity_id)
);
CREATE INDEX IF NOT EXISTS plan_entities_entity ON plan_entities (workspace_id, platform, entity_id);

-- Metrics projection: the latest report per (entity, interval). Reports carry full counters, never deltas.
CREATE TABLE IF NOT EXISTS metric_reports (
    workspace_id        text NOT NULL,
    platform            text NOT NULL,
    entity_id           text NOT NULL,
    interval_start      timestamptz NOT NULL,
    interval_end        timestamptz NOT NULL,
    reported_at         timestamptz NOT NULL,
    event_id            uuid NOT NULL,
    ad_account_id       text NOT NULL,
    entity_type         text NOT NULL,
    currency            text NOT NULL,
    spend_cents         bigint NOT NULL,
    impressions         bigint NOT NULL,
    daily_budget_cents  bigint,
    PRIMARY KEY (workspace_id, platform, entity_id, interval_start)
);
CREATE INDEX IF NOT EXISTS metric_reports_latest ON metric_reports (workspace_id, platform, entity_id, reported_at DESC);

-- Every snapshot taken (scheduled slot or on demand).
CREATE TABLE IF NOT EXISTS pacing_snapshots (
    snapshot_id          uuid PRIMARY KEY,
    plan_id              text NOT NULL REFERENCES flight_plans (plan_id) ON DELETE CASCADE,
    workspace_id         text NOT NULL,
    campaign_id          text NOT NULL,
    slot_at              timestamptz NOT NULL,
    taken_at             timestamptz NOT NULL,
    trigger              text NOT NULL,                 -- schedule | manual
    currency             text NOT NULL,
    total_budget_cents   bigint NOT NULL,
    total_spend_cents    bigint NOT NULL,
    expected_spend_cents bigint NOT NULL,
    pacing_pct           double precision NOT NULL,
    deviation_pct        double precision NOT NULL,
    state_before         text NOT NULL,
    state                text NOT NULL,
    alert                jsonb,
    channels             jsonb NOT NULL,
    deals                jsonb NOT NULL,
    proposal_ids         uuid[] NOT NULL DEFAULT '{}',
    UNIQUE (plan_id, slot_at)
);
CREATE INDEX IF NOT EXISTS pacing_snapshots_campaign_taken ON pacing_snapshots (campaign_id, taken_at);
CREATE INDEX IF NOT EXISTS pacing_snapshots_plan_taken ON pacing_snapshots (plan_id, taken_at);

-- Reallocation proposals and their life: pending_approval | requested | needs_budget | rejected | superseded
-- | applied | failed | conflict.
CREATE TABLE IF NOT EXISTS pacing_proposals (
    proposal_id        uuid PRIMARY KEY,
    plan_id            text NOT NULL REFERENCES flight_plans (plan_id) ON DELETE CASCADE,
    workspace_id       text NOT NULL,
    snapshot_id        uuid NOT NULL,
    slot_key           text NOT NULL,
    source_channel     text NOT NULL,
    target_channel     text NOT NULL,
    amount_cents       bigint NOT NULL CHECK (amount_cents > 0),
    moved_cents        bigint,
    currency           text NOT NULL,
    reason             text NOT NULL,
    requires_approval  boolean NOT NULL,
    status             text NOT NULL,
    status_reason      text NOT NULL DEFAULT '',
    request_id         uuid,
    correlation_id     uuid NOT NULL,
    created_at         timestamptz NOT NULL,
    decided_at         timestamptz,
    decided_by         text NOT NULL DEFAULT '',
    completed_at       timestamptz
);
CREATE INDEX IF NOT EXISTS pacing_proposals_plan_status ON pacing_proposals (plan_id, status, created_at);

-- The budget actions a requested proposal asked for, with their outcomes from action.executed.
CREATE TABLE IF NOT EXISTS proposal_actions (
    action_id      uuid PRIMARY KEY,
    proposal_id    uuid NOT NULL REFERENCES pacing_proposals (proposal_id) ON DELETE CASCADE,
    role           text NOT NULL CHECK (role IN ('target', 'source')),
    platform       text NOT NULL,
    ad_account_id  text NOT NULL,
    entity_type    text NOT NULL,
    entity_id      text NOT NULL,
    from_cents     bigint NOT NULL,
    to_cents       bigint NOT NULL,
    outcome        text,
    error          text,
    executed_at    timestamptz
);
CREATE INDEX IF NOT EXISTS proposal_actions_proposal ON proposal_actions (proposal_id);
CREATE INDEX IF NOT EXISTS proposal_actions_entity ON proposal_actions (platform, entity_id, executed_at DESC);

-- Every campaign pacing state change (automatic or manual).
CREATE TABLE IF NOT EXISTS pacing_transitions (
    id            bigserial PRIMARY KEY,
    plan_id       text NOT NULL REFERENCES flight_plans (plan_id) ON DELETE CASCADE,
    workspace_id  text NOT NULL,
    from_state    text NOT NULL,
    to_state      text NOT NULL,
    reason        text NOT NULL,
    actor         text NOT NULL,                       -- 'pacing' or the API key id
    snapshot_id   uuid,
    at            timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS pacing_transitions_plan_at ON pacing_transitions (plan_id, at);
