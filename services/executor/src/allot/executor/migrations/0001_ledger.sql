-- The action ledger: one row per action id, ever. A replayed approval finds its actions here.
CREATE TABLE actions (
    action_id            uuid PRIMARY KEY,
    seq                  bigserial NOT NULL,
    decision_id          uuid NOT NULL,
    request_id           uuid NOT NULL,
    workspace_id         text NOT NULL,
    source               text NOT NULL,
    source_id            text NOT NULL,
    correlation_id       uuid NOT NULL,
    approval_event_id    uuid NOT NULL,
    action               jsonb NOT NULL,          -- the approved BudgetAction as signed
    platform             text NOT NULL,
    ad_account_id        text NOT NULL,
    entity_id            text NOT NULL,
    status               text NOT NULL DEFAULT 'pending',  -- pending | succeeded | failed | conflict | rejected | already_applied
    attempts             int NOT NULL DEFAULT 0,
    next_attempt_at      timestamptz NOT NULL,
    platform_response_id text,
    before_cents         bigint,
    after_cents          bigint,
    observed_cents       bigint,
    before_status        text,
    after_status         text,
    observed_status      text,
    error                text,
    created_at           timestamptz NOT NULL,
    finished_at          timestamptz
);
CREATE INDEX actions_due ON actions (next_attempt_at, seq) WHERE status = 'pending';
CREATE INDEX actions_request ON actions (request_id);
CREATE INDEX actions_entity ON actions (platform, entity_id, seq);

-- What Allot last applied to each entity (out-of-band detection) and its failure streak (failure backoff).
CREATE TABLE entity_memory (
    platform             text NOT NULL,
    entity_id            text NOT NULL,
    last_budget_cents    bigint,
    last_status          text,
    applied_at           timestamptz,
    consecutive_failures int NOT NULL DEFAULT 0,
    first_failure_at     timestamptz,
    PRIMARY KEY (platform, entity_id)
);

-- Undo requests: one per change set, so a retried undo is not issued twice.
CREATE TABLE undo_requests (
    request_id      uuid PRIMARY KEY,
    undo_request_id uuid NOT NULL,
    requested_by    text NOT NULL,
    requested_at    timestamptz NOT NULL
);
