-- A user's log events, found by user: the index `logs_user` is replaced by a table written behind the
-- log table, in large sorted batches, by the group-commit writer (see `LogIndexing` in sqlite.rs and
-- docs/DECISIONS.md). Inline, the index took a random leaf page per event: two thirds of the bytes a
-- metadata PATCH wrote. `log_users_mark.watermark` is the last log rowid indexed; readers take
-- `log_users` up to it and scan the log rows after it, so they see every event at once.
CREATE TABLE log_users (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    log_id     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, log_id)
) WITHOUT ROWID;
-- `epoch` moves at each tenant deletion, which ends a batch of the index half written.
CREATE TABLE log_users_mark (watermark INTEGER NOT NULL, epoch INTEGER NOT NULL);
INSERT INTO log_users (tenant_id, user_id, log_id)
    SELECT tenant_id, user_id, log_id FROM logs WHERE user_id IS NOT NULL ORDER BY 1, 2, 3;
INSERT INTO log_users_mark (watermark, epoch) SELECT coalesce(max(rowid), 0), 0 FROM logs;
DROP INDEX logs_user;
