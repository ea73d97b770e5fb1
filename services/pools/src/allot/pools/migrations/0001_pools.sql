-- Budget pools: settings, engine state, manual rate limit and scheduler progress. Soft-deleted (deleted_at).
CREATE TABLE pools (
    pool_id                    uuid PRIMARY KEY,
    workspace_id               text NOT NULL,
    name                       text NOT NULL,
    optimization_metric        text NOT NULL,            -- roas | cpa | conversions | revenue
    daily_budget_cents         bigint NOT NULL,
    currency                   text NOT NULL,
    allocation_frequency_hours int NOT NULL,             -- 4 | 8 | 12 | 24
    default_min_budget_cents   bigint NOT NULL,
    default_max_budget_cents   bigint,
    min_budget_change_cents    bigint NOT NULL,
    status                     text NOT NULL,            -- active | paused
    tier                       int,
    autonomy                   text NOT NULL,            -- observe | live
    engine_state               jsonb NOT NULL DEFAULT '{}',  -- EngineState.to_dict() of the last plan
    version                    int NOT NULL DEFAULT 1,
    created_at                 timestamptz NOT NULL,
    updated_at                 timestamptz NOT NULL,
    deleted_at                 timestamptz,
    last_manual_allocate_at    timestamptz,              -- local manual rate limit (clock time)
    last_scheduled_slot        timestamptz               -- last slot the scheduler ran (clock time)
);
CREATE INDEX pools_ws ON pools (workspace_id, created_at) WHERE deleted_at IS NULL;
CREATE INDEX pools_active ON pools (status) WHERE deleted_at IS NULL;

-- Members (campaigns / ad sets). Removing a member deactivates it; re-adding reactivates the same row.
CREATE TABLE pool_members (
    member_id        uuid PRIMARY KEY,
    pool_id          uuid NOT NULL REFERENCES pools (pool_id),
    workspace_id     text NOT NULL,
    entity_type      text NOT NULL,                      -- campaign | adset
    entity_id        text NOT NULL,
    ad_account_id    text,
    entity_name      text,
    platform         text NOT NULL,
    currency         text NOT NULL,
    min_budget_cents bigint,
    max_budget_cents bigint,
    weight           double precision NOT NULL DEFAULT 1.0,
    is_active        boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    UNIQUE (pool_id, entity_id)
);
CREATE INDEX pool_members_entity ON pool_members (workspace_id, entity_id) WHERE is_active;

-- Allocation (execution) and simulation log. An execution's id is its change set's request id.
CREATE TABLE allocations (
    allocation_id    uuid PRIMARY KEY,
    pool_id          uuid NOT NULL REFERENCES pools (pool_id),
    workspace_id     text NOT NULL,
    kind             text NOT NULL,                      -- allocation | simulation
    trigger          text NOT NULL,                      -- manual | scheduled | simulate
    idempotency_key  text,                               -- pool:{id}:{utc_day} | pool:{id}:{slot_iso}
    slot             text,                               -- label used in action ids
    status           text NOT NULL,                      -- queued | requested | observed | frozen | no_change |
                                                         -- blocked | guardrail_observed | executing | executed |
                                                         -- partially_failed | failed | cancelled | simulated
    autonomy         text NOT NULL,
    settings         jsonb NOT NULL,                     -- pool settings snapshot taken when it was queued
    members          jsonb NOT NULL,                     -- member snapshot taken when it was queued
    inputs           jsonb,                              -- summary of the engine inputs
    plan             jsonb,                              -- every member's before/after/why, flags
    actions          jsonb NOT NULL DEFAULT '[]',        -- the (would-be) set_budget actions
    decision         jsonb,                              -- the guardrail.blocked payload, if any
    requested_by     text NOT NULL,
    created_at       timestamptz NOT NULL,
    planned_at       timestamptz,
    updated_at       timestamptz NOT NULL,
    event_id         uuid                                -- id of the allocation.requested published
);
CREATE UNIQUE INDEX allocations_key ON allocations (pool_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX allocations_pool ON allocations (pool_id, created_at DESC);
CREATE INDEX allocations_queued ON allocations (created_at) WHERE status = 'queued';

-- One outcome per executed action (action.executed), kept per action id.
CREATE TABLE allocation_outcomes (
    action_id     uuid PRIMARY KEY,
    allocation_id uuid NOT NULL REFERENCES allocations (allocation_id),
    entity_id     text NOT NULL,
    outcome       text NOT NULL,
    before_cents  bigint,
    after_cents   bigint,
    observed_cents bigint,
    error         text,
    executed_at   timestamptz NOT NULL
);
CREATE INDEX allocation_outcomes_alloc ON allocation_outcomes (allocation_id);

-- Member metric projection: the latest report (greatest reported_at) per (entity, interval_start).
CREATE TABLE member_metrics (
    workspace_id   text NOT NULL,
    entity_id      text NOT NULL,
    interval_start timestamptz NOT NULL,
    interval_end   timestamptz NOT NULL,
    reported_at    timestamptz NOT NULL,
    spend_cents    bigint NOT NULL,
    revenue_cents  bigint NOT NULL,
    conversions    bigint NOT NULL,
    impressions    bigint NOT NULL,
    clicks         bigint NOT NULL,
    reach          bigint NOT NULL,
    PRIMARY KEY (workspace_id, entity_id, interval_start)
);
CREATE INDEX member_metrics_end ON member_metrics (workspace_id, entity_id, interval_end);

-- Current state of each entity from its latest report (budget, status, account), or a later executed change.
CREATE TABLE entities (
    workspace_id       text NOT NULL,
    entity_id          text NOT NULL,
    platform           text NOT NULL,
    ad_account_id      text NOT NULL,
    entity_type        text NOT NULL,
    entity_name        text NOT NULL,
    status             text NOT NULL,
    daily_budget_cents bigint,
    currency           text NOT NULL,
    reported_at        timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, entity_id)
);

-- Things logged against a pool that are not allocations (pacing recommendations touching its members).
CREATE TABLE pool_notes (
    note_id      uuid NOT NULL,                          -- the event id
    pool_id      uuid NOT NULL REFERENCES pools (pool_id),
    workspace_id text NOT NULL,
    kind         text NOT NULL,
    at           timestamptz NOT NULL,
    body         jsonb NOT NULL,
    PRIMARY KEY (note_id, pool_id)
);
CREATE INDEX pool_notes_pool ON pool_notes (pool_id, at DESC);
