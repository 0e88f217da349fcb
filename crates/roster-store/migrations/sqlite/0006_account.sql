-- The self-service account. Erasing a user also strips their address from the log events that name it
-- without their id (failed logins before the account existed): this index keeps that a lookup.
CREATE INDEX logs_user_name ON logs (tenant_id, lower(user_name));
