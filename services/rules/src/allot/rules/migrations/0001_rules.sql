-- Rules: one row per rule, owned by a workspace. The validated RuleDefinition is stored as JSON.
CREATE TABLE rules (
    rule_id           uuid PRIMARY KEY,
    workspace_id      text NOT NULL,
    name              text NOT NULL,
    definition        jsonb NOT NULL,
    status            text NOT NULL DEFAULT 'paused',   -- active | paused (the circuit breaker sets paused)
    interval_minutes  int NOT NULL,
    template          text,
    last_evaluated_at timestamptz,
    last_slot         timestamptz,                      -- start of the last slot evaluated
    last_error        text,
    auto_pause_reason text,
    auto_paused_at    timestamptz,
    breaker_reset_at  timestamptz,                      -- outcomes before this (re-activation) do not count
    version           int NOT NULL DEFAULT 1,
    created_by        text NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    deleted_at        timestamptz
);
CREATE INDEX rules_workspace ON rules (workspace_id, created_at) WHERE deleted_at IS NULL;
CREATE INDEX rules_active ON rules (last_slot) WHERE status = 'active' AND deleted_at IS NULL;

-- One row per rule evaluation (per slot); unique per (rule, slot) so a fire is recorded at most once.
CREATE TABLE executions (
    execution_id       uuid PRIMARY KEY,
    rule_id            uuid NOT NULL,
    workspace_id       text NOT NULL,
    slot_start         timestamptz NOT NULL,
    started_at         timestamptz NOT NULL,
    trigger            text NOT NULL,                  -- schedule | manual
    result             text NOT NULL,                  -- requested | notified | no_match | auto_paused
    entities_evaluated int NOT NULL,
    matched            int NOT NULL,
    skipped            int NOT NULL,
    skip_counts        jsonb NOT NULL DEFAULT '{}',
    skipped_entities   jsonb NOT NULL DEFAULT '[]',    -- [{entity_id, reason, detail}]
    actions_count      int NOT NULL DEFAULT 0,
    request_ids        uuid[] NOT NULL DEFAULT '{}',
    acted              boolean NOT NULL DEFAULT false, -- issued at least one action (max_executions_per_day)
    auto_pause_reason  text,
    UNIQUE (rule_id, slot_start)
);
CREATE INDEX executions_rule ON executions (rule_id, started_at DESC);

-- Matched entities of an execution, with the metric snapshot that triggered them.
CREATE TABLE execution_entities (
    execution_id    uuid NOT NULL,
    entity_id       text NOT NULL,
    rule_id         uuid NOT NULL,
    platform        text NOT NULL,
    ad_account_id   text NOT NULL,
    entity_level    text NOT NULL,
    snapshot        jsonb NOT NULL,
    planned         jsonb NOT NULL,                    -- planned actions (absolute)
    skipped_actions jsonb NOT NULL DEFAULT '[]',
    notify_only     boolean NOT NULL DEFAULT false,
    PRIMARY KEY (execution_id, entity_id)
);

-- Every action a rule sent (and outcomes reported for this workspace's rules). Feeds cooldown, pending,
-- failure backoff and the circuit breaker.
CREATE TABLE rule_actions (
    action_id     uuid PRIMARY KEY,
    rule_id       uuid NOT NULL,
    workspace_id  text NOT NULL,
    execution_id  uuid,                                -- NULL for an outcome of an action we never sent
    request_id    uuid,
    entity_id     text NOT NULL,
    platform      text NOT NULL,
    action_type   text NOT NULL,                       -- set_budget | pause | activate | relaunch
    from_cents    bigint,
    to_cents      bigint,
    from_status   text,
    to_status     text,
    sent_at       timestamptz,
    outcome       text,                                -- NULL = pending; succeeded | already_applied | failed |
                                                       -- conflict | rejected | blocked | observed
    success       boolean,
    outcome_at    timestamptz,
    error         text
);
CREATE INDEX rule_actions_rule ON rule_actions (rule_id, outcome_at);
CREATE INDEX rule_actions_entity ON rule_actions (workspace_id, entity_id, sent_at);
CREATE INDEX rule_actions_request ON rule_actions (request_id);
CREATE INDEX rule_actions_execution ON rule_actions (execution_id);

-- Lifecycle audit log: who did what to which rule, with the rule before and after.
CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    workspace_id text NOT NULL,
    rule_id      uuid,
    action       text NOT NULL,       -- create | update | activate | pause | delete | auto_pause | bulk
    actor        text NOT NULL,       -- API key id, or 'system'
    at           timestamptz NOT NULL,
    before       jsonb,
    after        jsonb,
    detail       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_workspace ON audit_log (workspace_id, id DESC);

-- Projection of metrics.ingested: the latest report per (entity, interval) (greatest reported_at wins) ...
CREATE TABLE metric_intervals (
    workspace_id       text NOT NULL,
    entity_id          text NOT NULL,
    interval_start     timestamptz NOT NULL,
    interval_end       timestamptz NOT NULL,
    reported_at        timestamptz NOT NULL,
    day                date NOT NULL,              -- UTC day of interval_start
    spend_cents        bigint NOT NULL,
    impressions        bigint NOT NULL,
    clicks             bigint NOT NULL,
    conversions        bigint NOT NULL,
    revenue_cents      bigint NOT NULL,
    reach              bigint NOT NULL,
    link_clicks        bigint NOT NULL,
    landing_page_views bigint NOT NULL,
    add_to_cart        bigint NOT NULL,
    initiate_checkout  bigint NOT NULL,
    leads              bigint NOT NULL,
    video_views_3s     bigint NOT NULL,
    video_thruplays    bigint NOT NULL,
    PRIMARY KEY (workspace_id, entity_id, interval_start)
);
CREATE INDEX metric_intervals_day ON metric_intervals (workspace_id, entity_id, day);

-- ... summed into the domain's UTC daily buckets (recomputed for every touched (entity, day)).
CREATE TABLE metric_daily (
    workspace_id       text NOT NULL,
    entity_id          text NOT NULL,
    day                date NOT NULL,
    spend_cents        bigint NOT NULL,
    impressions        bigint NOT NULL,
    clicks             bigint NOT NULL,
    conversions        bigint NOT NULL,
    revenue_cents      bigint NOT NULL,
    reach              bigint NOT NULL,
    link_clicks        bigint NOT NULL,
    landing_page_views bigint NOT NULL,
    add_to_cart        bigint NOT NULL,
    initiate_checkout  bigint NOT NULL,
    leads              bigint NOT NULL,
    video_views_3s     bigint NOT NULL,
    video_thruplays    bigint NOT NULL,
    PRIMARY KEY (workspace_id, entity_id, day)
);

-- Entities as of their latest report (greatest (reported_at, interval_start) wins).
CREATE TABLE entities (
    workspace_id       text NOT NULL,
    entity_id          text NOT NULL,
    platform           text NOT NULL,
    ad_account_id      text NOT NULL,
    entity_type        text NOT NULL,
    name               text NOT NULL,
    status             text NOT NULL,
    daily_budget_cents bigint,
    currency           text NOT NULL,
    parent_id          text,
    reported_at        timestamptz NOT NULL,
    interval_start     timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, entity_id)
);
CREATE INDEX entities_scope ON entities (workspace_id, ad_account_id, entity_type);
