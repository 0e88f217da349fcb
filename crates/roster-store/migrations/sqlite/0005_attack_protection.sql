-- Attack protection: per-tenant settings and the counters brute-force protection and suspicious-IP
-- throttling share. Counters live in the database so every node sees the same count; a count is
-- charged by one atomic upsert before any password is hashed.

CREATE TABLE attack_protection (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,      -- brute-force-protection | suspicious-ip-throttling
    settings     TEXT NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, kind)
);

CREATE TABLE attack_counters (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,     -- login (identifier[+ip]) | ip_login | ip_signup
    key           TEXT NOT NULL,
    identifier    TEXT,              -- lowercased login identifier (login counters)
    ip            TEXT,
    connection    TEXT,
    user_id       TEXT,
    count         INTEGER NOT NULL,
    window_start  INTEGER NOT NULL,
    last_at       INTEGER NOT NULL,
    blocked_at    INTEGER,
    notified_at   INTEGER,
    PRIMARY KEY (tenant_id, kind, key)
);
CREATE INDEX attack_counters_identifier ON attack_counters (tenant_id, identifier);
CREATE INDEX attack_counters_user ON attack_counters (tenant_id, user_id);

-- Auth0's "Trust Token Endpoint IP Header": a confidential client may name the end user's address in
-- `auth0-forwarded-for` on the password grants (a back end logging users in on their behalf).
ALTER TABLE clients ADD COLUMN token_endpoint_ip_header_trusted BOOLEAN NOT NULL DEFAULT FALSE;
