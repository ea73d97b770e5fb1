-- A channel may be paused by an admin (PATCH /api/v1/notifications/channels/{id} {"state": "paused"}): nothing is
-- queued for it and the delivery worker sends nothing to it (what was already pending when it was paused goes to
-- notification.requested.dlq with reason channel_paused, as for a disabled channel). "active" resumes it.
-- The states a channel can be in, enforced from now on (0001 only named them in a comment).
ALTER TABLE channels ADD CONSTRAINT channels_state_known
    CHECK (state IN ('active', 'paused', 'disabled', 'removed'));
