-- One pool per entity: an entity (campaign / ad set) is an active member of at most one pool of its workspace.
-- Two pools holding the same entity fight over its budget, so the database refuses the second membership.
--
-- What "active" means here is what the rows store: pool_members.is_active. A PAUSED pool keeps its members
-- active (pausing is temporary: resuming must never find a member taken, and the pool's floors and budget
-- still assume it), so it keeps blocking. A DELETED pool (the API's archive: readable with include_deleted)
-- deactivates its members when it is deleted, so it never blocks. An inactive (removed) member never blocks.
--
-- Rows written before this rule may already break it. For each entity the membership kept is the one in an
-- active pool before one in a paused pool, then the oldest; every other membership is deactivated and a note
-- naming the pool that kept it is logged on its pool (GET /budget-pools/{id}/allocations shows notes).
WITH ranked AS (
    SELECT m.member_id, m.pool_id, m.workspace_id, m.entity_id,
           first_value(m.pool_id) OVER w AS kept_pool_id,
           row_number() OVER w AS rank
      FROM pool_members m JOIN pools p ON p.pool_id = m.pool_id
     WHERE m.is_active
    WINDOW w AS (PARTITION BY m.workspace_id, m.entity_id
                 ORDER BY p.deleted_at IS NOT NULL, p.status <> 'active', m.created_at, m.member_id)
), released AS (
    UPDATE pool_members pm SET is_active = false, updated_at = now()
      FROM ranked r
     WHERE pm.member_id = r.member_id AND r.rank > 1
 RETURNING pm.member_id, pm.pool_id, pm.workspace_id, pm.entity_id, r.kept_pool_id
)
INSERT INTO pool_notes (note_id, pool_id, workspace_id, kind, at, body)
SELECT gen_random_uuid(), r.pool_id, r.workspace_id, 'member_deactivated_duplicate', now(),
       jsonb_build_object(
           'entityId', r.entity_id,
           'memberId', r.member_id,
           'keptInPoolId', r.kept_pool_id,
           'message', 'deactivated by migration 0004: the entity was also an active member of pool '
                      || r.kept_pool_id || ', and an entity may be in one pool only')
  FROM released r;

CREATE UNIQUE INDEX pool_members_one_active_pool ON pool_members (workspace_id, entity_id) WHERE is_active;
-- Same columns and predicate as the unique index above: redundant now.
DROP INDEX pool_members_entity;
