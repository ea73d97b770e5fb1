-- Channels of each workspace. Secrets (Slack / webhook URL, webhook signing secret, SMTP password) are stored ONLY
-- sealed (libsodium sealed box to the notifier's key); url_hint is the URL's host, shown by the API.
CREATE TABLE channels (
    channel_id           text PRIMARY KEY,
    workspace_id         text NOT NULL,
    kind                 text NOT NULL,              -- slack | email | webhook
    name                 text NOT NULL,
    state                text NOT NULL,              -- active | disabled | removed
    url_hint             text NOT NULL DEFAULT '',
    email                jsonb,                      -- EmailConfig without the password
    quiet_hours          jsonb,                      -- {start, end, timezone}
    secret               jsonb,                      -- SealedToken {recipient: notify, key_id, ciphertext}
    consecutive_failures int NOT NULL DEFAULT 0,
    disabled_reason      text NOT NULL DEFAULT '',
    created_by           text NOT NULL,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);
CREATE INDEX channels_ws ON channels (workspace_id, created_at);

CREATE TABLE subscriptions (
    subscription_id text PRIMARY KEY,
    workspace_id    text NOT NULL,
    channel_id      text NOT NULL REFERENCES channels (channel_id),
    kinds           text[] NOT NULL,                 -- empty = every kind
    min_severity    text NOT NULL,
    created_at      timestamptz NOT NULL
);
CREATE INDEX subscriptions_ws ON subscriptions (workspace_id);

-- One notification for one channel. Written in the consumer's transaction (nothing is lost when the notifier dies),
-- sent by the delivery worker (claimed with a lease, so a killed worker's claims are taken over).
CREATE TABLE deliveries (
    delivery_id     text PRIMARY KEY,
    workspace_id    text NOT NULL,
    notification_id uuid NOT NULL,
    channel_id      text NOT NULL REFERENCES channels (channel_id),
    kind            text NOT NULL,
    severity        text NOT NULL,
    dedupe_key      text NOT NULL,
    notification    jsonb NOT NULL,                  -- the NotificationRequested payload
    envelope        jsonb,                           -- the record it came in (for the DLQ)
    state           text NOT NULL,                   -- pending | delivered | suppressed | failed
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    locked_until    timestamptz,
    last_error      text NOT NULL DEFAULT '',
    digest_id       uuid,                            -- sent as part of this digest
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    UNIQUE (notification_id, channel_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_dedupe ON deliveries (channel_id, dedupe_key, created_at);
CREATE INDEX deliveries_ws ON deliveries (workspace_id, created_at);

-- Every attempt, as the receiver answered it.
CREATE TABLE delivery_attempts (
    attempt_id      bigserial PRIMARY KEY,
    delivery_id     text NOT NULL,
    workspace_id    text NOT NULL,
    channel_id      text NOT NULL,
    notification_id uuid NOT NULL,
    message_id      uuid NOT NULL,                   -- the idempotency key sent (a digest's id when part of one)
    attempt         int NOT NULL,
    outcome         text NOT NULL,                   -- delivered | retry | failed | suppressed
    http_status     int,
    smtp_code       int,
    error           text NOT NULL DEFAULT '',
    duration_ms     int NOT NULL DEFAULT 0,
    attempted_at    timestamptz NOT NULL
);
CREATE INDEX delivery_attempts_ws ON delivery_attempts (workspace_id, attempted_at);
