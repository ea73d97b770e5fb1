-- The spend ledger counts on the ad account's local day and month (its time zone from account.profiled;
-- UTC when unknown, which is what every existing row was counted on). Decisions keep their utc_day: the
-- idempotency key stays per UTC day.
ALTER TABLE spend_daily RENAME COLUMN utc_day TO day;
ALTER TABLE spend_pool_daily RENAME COLUMN utc_day TO day;
-- The decision's ledger day, for the ledger view's decision counts (existing rows: their UTC day).
ALTER TABLE decisions ADD COLUMN ledger_day date;
UPDATE decisions SET ledger_day = utc_day;
ALTER TABLE decisions ALTER COLUMN ledger_day SET NOT NULL;
CREATE INDEX decisions_ledger_day ON decisions (workspace_id, ledger_day);
