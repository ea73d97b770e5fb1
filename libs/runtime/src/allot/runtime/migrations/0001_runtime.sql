-- Event ids a consumer has applied; written in the same transaction as the state change.
CREATE TABLE IF NOT EXISTS processed_events (
    event_id     uuid PRIMARY KEY,
    topic        text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);

-- Transactional outbox: rows are written with the state change and relayed to Kafka after commit.
CREATE TABLE IF NOT EXISTS outbox (
    id          bigserial PRIMARY KEY,
    topic       text NOT NULL,
    key         bytea NOT NULL,
    value       bytea NOT NULL,
    headers     jsonb NOT NULL DEFAULT '[]',
    event_id    uuid,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per (job, slot): whoever inserts it runs the job for that slot, once across instances.
CREATE TABLE IF NOT EXISTS schedule_claims (
    job         text NOT NULL,
    slot_start  timestamptz NOT NULL,
    claimed_by  text NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job, slot_start)
);
