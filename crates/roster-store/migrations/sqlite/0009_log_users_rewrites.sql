-- `log_users_mark.rewrites` counts the log rows whose `user_id` changed (a deleted user's events take a
-- pseudonym). The group-commit writer copies a second's new log rows before it adds them to `log_users`
-- a slice at a time; a slice must not add an entry whose log row has changed user meanwhile. Checking
-- each entry against its log row cost more than the rest of the indexing together, so a batch checks
-- only once this count moved since it began (see `LogIndexing` in sqlite.rs).
ALTER TABLE log_users_mark ADD COLUMN rewrites INTEGER NOT NULL DEFAULT 0;
CREATE TRIGGER logs_user_rewritten AFTER UPDATE OF user_id ON logs
    WHEN OLD.user_id IS NOT NEW.user_id
BEGIN
    UPDATE log_users_mark SET rewrites = rewrites + 1;
END;
