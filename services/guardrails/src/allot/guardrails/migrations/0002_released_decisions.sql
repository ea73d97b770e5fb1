-- Approvals that expired before the executor received them: what they had reserved was given back, once.
CREATE TABLE released_decisions (
    decision_id  uuid PRIMARY KEY REFERENCES decisions (decision_id),
    workspace_id text NOT NULL,
    eur_cents    bigint NOT NULL,           -- exposure given back to the decision's day and month
    reason       text NOT NULL,
    released_at  timestamptz NOT NULL
);
