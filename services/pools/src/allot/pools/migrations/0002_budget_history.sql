-- Budgets the executor set on entities (any source), so plans stay inside the guardrails' rolling
-- net-change budget per entity instead of proposing moves that would be blocked.
CREATE TABLE budget_history (
    action_id     uuid PRIMARY KEY,
    workspace_id  text NOT NULL,
    entity_id     text NOT NULL,
    before_cents  bigint NOT NULL,
    after_cents   bigint NOT NULL,
    executed_at   timestamptz NOT NULL
);
CREATE INDEX budget_history_entity ON budget_history (workspace_id, entity_id, executed_at);
