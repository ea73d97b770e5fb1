-- One row per workspace that changed its limits; a workspace without a row uses WorkspaceLimits() defaults.
CREATE TABLE workspace_limits (
    workspace_id text PRIMARY KEY,
    limits       jsonb NOT NULL,            -- WorkspaceLimits.model_dump(mode="json")
    version      int NOT NULL,
    updated_at   timestamptz NOT NULL,
    updated_by   text NOT NULL              -- principal.key_id
);

-- Every change to a workspace's limits: who, when, and before/after of each changed field (diff_settings).
CREATE TABLE settings_audit (
    id           bigserial PRIMARY KEY,
    workspace_id text NOT NULL,
    key_id       text NOT NULL,
    role         text NOT NULL,
    action       text NOT NULL,             -- put | patch | kill_switch
    at           timestamptz NOT NULL,
    version      int NOT NULL,              -- version after the change
    changes      jsonb NOT NULL             -- {field: {"before": v, "after": v}}
);
CREATE INDEX settings_audit_ws ON settings_audit (workspace_id, id DESC);

-- One decision per (workspace, source, idempotency key, UTC day): a retried request replays it.
CREATE TABLE decisions (
    decision_id     uuid PRIMARY KEY,
    workspace_id    text NOT NULL,
    request_id      uuid NOT NULL,          -- the request first decided under this key
    source          text NOT NULL,
    source_id       text NOT NULL,
    idempotency_key text NOT NULL,
    utc_day         date NOT NULL,
    status          text NOT NULL,          -- approved | blocked
    "check"         text,
    observe_only    boolean NOT NULL,
    exposure_eur_cents bigint NOT NULL,
    decided_at      timestamptz NOT NULL,
    decision        jsonb NOT NULL,         -- Decision.model_dump(mode="json")
    request         jsonb NOT NULL,         -- the AllocationRequested payload that was decided
    event_id        uuid NOT NULL,          -- id of the guardrail.* event published for it
    UNIQUE (workspace_id, source, idempotency_key, utc_day)
);
CREATE INDEX decisions_source ON decisions (workspace_id, source_id, decided_at DESC);
CREATE INDEX decisions_day ON decisions (workspace_id, utc_day);

-- Every request id seen (retries with a new request id included) → its decision, for fast lookups.
CREATE TABLE decision_requests (
    workspace_id text NOT NULL,
    request_id   uuid NOT NULL,
    decision_id  uuid NOT NULL REFERENCES decisions (decision_id),
    event_id     uuid NOT NULL,             -- the guardrail.* event emitted for this request
    seen_at      timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, request_id)
);

-- Worst-case spend exposure counted per UTC day and per UTC month (EUR cents).
CREATE TABLE spend_daily (
    workspace_id       text NOT NULL,
    utc_day            date NOT NULL,
    exposure_eur_cents bigint NOT NULL DEFAULT 0,
    approvals          int NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, utc_day)
);
CREATE TABLE spend_monthly (
    workspace_id       text NOT NULL,
    month              text NOT NULL,       -- 'YYYY-MM'
    exposure_eur_cents bigint NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, month)
);
-- What each pool already counted on a day (a pool's daily budget counts once per UTC day).
CREATE TABLE spend_pool_daily (
    workspace_id       text NOT NULL,
    utc_day            date NOT NULL,
    pool_id            text NOT NULL,
    exposure_eur_cents bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, utc_day, pool_id)
);

-- Approved budget changes per entity (rolling net-change window, cross-source arbitration).
CREATE TABLE entity_changes (
    id           bigserial PRIMARY KEY,
    workspace_id text NOT NULL,
    entity_id    text NOT NULL,
    source       text NOT NULL,
    source_id    text NOT NULL,
    from_cents   bigint NOT NULL,
    to_cents     bigint NOT NULL,
    at           timestamptz NOT NULL,
    decision_id  uuid NOT NULL
);
CREATE INDEX entity_changes_entity ON entity_changes (workspace_id, entity_id, at);

-- Pool membership learned from approved pool allocations: entity → pool.
CREATE TABLE pool_members (
    workspace_id text NOT NULL,
    entity_id    text NOT NULL,
    pool_id      text NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, entity_id)
);

-- Manual change sets that counted toward the rate limit.
CREATE TABLE manual_requests (
    id           bigserial PRIMARY KEY,
    workspace_id text NOT NULL,
    source       text NOT NULL,
    source_id    text NOT NULL,
    at           timestamptz NOT NULL,
    decision_id  uuid NOT NULL
);
CREATE INDEX manual_requests_source ON manual_requests (workspace_id, source, source_id, at);
