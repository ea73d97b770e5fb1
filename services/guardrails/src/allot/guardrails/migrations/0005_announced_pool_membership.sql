-- Pool membership announced by pools (pool.members_changed), replacing what was only learned from approved pool
-- allocations. Per pool: the latest membership version applied (an older or repeated one changes nothing), kept
-- after the pool is deleted so a replayed earlier state cannot bring its members back.
CREATE TABLE pool_membership_versions (
    workspace_id text NOT NULL,
    pool_id      text NOT NULL,
    version      bigint NOT NULL,
    changed_at   timestamptz NOT NULL,
    deleted      boolean NOT NULL,
    PRIMARY KEY (workspace_id, pool_id)
);

-- When the announced state that gave the entity to its pool was committed (pools' clock); NULL: the row was learned
-- from an approved allocation of a pool that never announced its membership. An entity listed by two pools' states
-- belongs to the later one.
ALTER TABLE pool_members ADD COLUMN changed_at timestamptz;
