-- One-time tickets (password reset, email verification, ...), jobs, and password history.

-- A ticket is found by the SHA-256 of its token (the token itself is only ever in the link). It is
-- redeemed once, by one conditional UPDATE that also checks the expiry.
CREATE TABLE tickets (
    tenant_id                  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id_hash                    TEXT NOT NULL,
    kind                       TEXT NOT NULL,       -- password_reset | email_verification
    user_id                    TEXT NOT NULL,
    email                      TEXT,                -- the address the ticket was issued for
    client_id                  TEXT,
    result_url                 TEXT,
    mark_email_verified        BOOLEAN NOT NULL,
    include_email_in_redirect  BOOLEAN NOT NULL,
    created_at                 INTEGER NOT NULL,
    expires_at                 INTEGER NOT NULL,
    used_at                    INTEGER,
    PRIMARY KEY (tenant_id, id_hash),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, user_id) ON DELETE CASCADE
);
CREATE INDEX tickets_user ON tickets (tenant_id, user_id, kind);

-- Asynchronous work requested through the Management API (`/jobs/...`). A verification-email job's
-- progress is its outbox row's.
CREATE TABLE jobs (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,
    user_id      TEXT,
    outbox_id    TEXT,
    details      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Hashes of the passwords a user set (newest 24 kept), for connections that forbid reusing one.
CREATE TABLE password_history (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL,
    hash         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, user_id) ON DELETE CASCADE
);
CREATE INDEX password_history_user ON password_history (tenant_id, user_id, created_at);
