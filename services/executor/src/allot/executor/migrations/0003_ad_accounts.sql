-- The account directory: this service's own projection of account.profiled (allot.runtime.accounts).
-- The same migration, byte for byte, in every service that needs an ad account's local day.
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
