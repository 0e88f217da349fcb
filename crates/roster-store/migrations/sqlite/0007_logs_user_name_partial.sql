-- Only log events that name someone need the erasure lookup by name (0006). Most events name nobody
-- (every Management API event: `sapi`, `fapi`), and their NULL entries were all inserted at one place
-- of this index: about a quarter of a page written per metadata PATCH on SQLite. Queries by name say
-- `user_name IS NOT NULL` so that the planner may use the partial index.
DROP INDEX logs_user_name;
CREATE INDEX logs_user_name ON logs (tenant_id, lower(user_name)) WHERE user_name IS NOT NULL;
