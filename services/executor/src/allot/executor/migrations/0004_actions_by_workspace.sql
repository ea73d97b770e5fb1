-- The console's Activity page lists a workspace's most recent change sets (GET /api/v1/change-sets).
CREATE INDEX actions_workspace_seq ON actions (workspace_id, seq DESC);
