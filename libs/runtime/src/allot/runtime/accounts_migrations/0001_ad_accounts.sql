-- The account directory: each service's own projection of account.profiled (allot.runtime.accounts).
-- Owned here from now on: applied into every schema of a service that consumes account.profiled. The services'
-- own *_ad_accounts.sql migrations (executor 0003, guardrails 0003, pacing 0002, pools 0007, rules 0003) created
-- this same table before and stay as they are (applied migrations are never edited); whichever runs first creates
-- it and the others change nothing. A later change to the table is a new migration here, not in the services.
CREATE TABLE IF NOT EXISTS ad_accounts (
    workspace_id   text NOT NULL,
    platform       text NOT NULL,
    ad_account_id  text NOT NULL,
    connection_id  text,
    name           text NOT NULL DEFAULT '',
    currency       text NOT NULL,
    timezone_name  text NOT NULL,           -- IANA zone of the account's day (validated before it is stored)
    account_status text NOT NULL,
    state          text NOT NULL,           -- connected | disconnected | error
    detail         text NOT NULL DEFAULT '',
    observed_at    timestamptz NOT NULL,    -- later reports win
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, platform, ad_account_id)
);
