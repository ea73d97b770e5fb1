-- Ingest's own schema: the connections it may read (projection of connection.changed), per-account cursor
-- state, and what it has published per entity and interval (so unchanged intervals are not re-published).
CREATE TABLE connections (
    connection_id      text PRIMARY KEY,
    workspace_id       text NOT NULL,
    platform           text NOT NULL,
    state              text NOT NULL,
    read_token         jsonb,
    graph_api_version  text,
    changed_at         timestamptz NOT NULL,
    event_id           uuid NOT NULL
);

CREATE TABLE accounts (
    connection_id      text NOT NULL REFERENCES connections (connection_id),
    ad_account_id      text NOT NULL,
    active             boolean NOT NULL DEFAULT true,
    currency           text,
    timezone_name      text,
    -- set again from the platform after a connection.changed; a later difference is a time zone change
    accepted_timezone  text,
    state              text NOT NULL DEFAULT 'pending',
    detail             text NOT NULL DEFAULT '',
    profile_fp         text,
    read_since         date,
    read_until         date,
    last_read_at       timestamptz,
    last_attempt_at    timestamptz,
    PRIMARY KEY (connection_id, ad_account_id)
);

CREATE TABLE published (
    connection_id      text NOT NULL,
    ad_account_id      text NOT NULL,
    entity_type        text NOT NULL,
    entity_id          text NOT NULL,
    interval_start     timestamptz NOT NULL,
    fingerprint        text NOT NULL,
    event_id           uuid NOT NULL,
    published_at       timestamptz NOT NULL,
    PRIMARY KEY (connection_id, ad_account_id, entity_type, entity_id, interval_start)
);
