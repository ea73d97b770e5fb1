-- Platform connections of each workspace. Tokens are stored ONLY sealed (libsodium sealed boxes to the ingest or
-- executor public key): this service cannot open them. *_hint = the last 4 characters, shown by the API.
CREATE TABLE connections (
    connection_id     text PRIMARY KEY,
    workspace_id      text NOT NULL,
    platform          text NOT NULL,
    ad_account_ids    text[] NOT NULL,           -- in the order given (kept when removed, for the record)
    state             text NOT NULL,             -- active | removed
    read_token        jsonb,                     -- SealedToken {recipient: ingest, key_id, ciphertext}
    write_token       jsonb,                     -- SealedToken {recipient: executor, key_id, ciphertext}
    read_token_hint   text NOT NULL DEFAULT '',
    write_token_hint  text NOT NULL DEFAULT '',
    graph_api_version text,
    version           int NOT NULL DEFAULT 1,
    created_by        text NOT NULL,             -- API key id
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX connections_ws ON connections (workspace_id, created_at);

-- Claims on ad accounts by active connections. One platform account belongs to at most one active connection (of one
-- workspace): the primary key settles concurrent claims; a removed connection gives its accounts back.
CREATE TABLE connection_accounts (
    platform      text NOT NULL,
    ad_account_id text NOT NULL,
    connection_id text NOT NULL REFERENCES connections (connection_id),
    workspace_id  text NOT NULL,
    PRIMARY KEY (platform, ad_account_id)
);
CREATE INDEX connection_accounts_conn ON connection_accounts (connection_id);
