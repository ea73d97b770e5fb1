-- The executor's projection of connection.changed: per connection, its workspace, accounts and the write token
-- SEALED to the executor's key (opened in memory only when a write needs it; no plaintext at rest).
CREATE TABLE connection_tokens (
    connection_id     text PRIMARY KEY,
    workspace_id      text NOT NULL,
    platform          text NOT NULL,
    state             text NOT NULL,              -- active | removed
    write_token       jsonb,                      -- SealedToken {recipient: executor, key_id, ciphertext}
    graph_api_version text,
    changed_at        timestamptz NOT NULL,       -- latest change applied (older ones arriving late are ignored)
    event_id          uuid NOT NULL
);

-- Accounts of active connections, looked up by (workspace, platform, account): the workspace is part of the key,
-- so another workspace's account never yields a token.
CREATE TABLE connection_token_accounts (
    connection_id text NOT NULL REFERENCES connection_tokens (connection_id),
    workspace_id  text NOT NULL,
    platform      text NOT NULL,
    ad_account_id text NOT NULL,
    PRIMARY KEY (connection_id, ad_account_id)
);
CREATE INDEX connection_token_accounts_lookup ON connection_token_accounts (workspace_id, platform, ad_account_id);
