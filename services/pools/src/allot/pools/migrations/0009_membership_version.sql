-- Counts each pool's membership changes (created with members, member added or removed, pool deleted); every
-- change publishes pool.members_changed with the new value, so consumers can tell a later state from an earlier one.
ALTER TABLE pools ADD COLUMN membership_version bigint NOT NULL DEFAULT 0;
