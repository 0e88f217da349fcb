-- Foundation schema (SQLite). Every table is keyed by tenant_id first, so data can later be distributed
-- by tenant. Times are milliseconds since the Unix epoch; JSON is TEXT.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    settings    TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE signing_keys (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kid          TEXT NOT NULL,
    alg          TEXT NOT NULL,
    private_key  BLOB NOT NULL,
    public_jwk   TEXT NOT NULL,
    status       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, kid)
);

CREATE TABLE connections (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    strategy    TEXT NOT NULL,
    options     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

CREATE TABLE clients (
    tenant_id            TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    client_id            TEXT NOT NULL,
    name                 TEXT NOT NULL,
    secret_hash          TEXT NOT NULL,
    app_type             TEXT NOT NULL,
    is_management        BOOLEAN NOT NULL,
    grant_types          TEXT NOT NULL,
    callbacks            TEXT NOT NULL,
    allowed_logout_urls  TEXT NOT NULL,
    created_at           INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, client_id)
);

CREATE TABLE client_grants (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    audience    TEXT NOT NULL,
    scope       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, client_id, audience),
    FOREIGN KEY (tenant_id, client_id) REFERENCES clients(tenant_id, client_id) ON DELETE CASCADE
);

CREATE TABLE users (
    tenant_id            TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id              TEXT NOT NULL,
    connection_id        TEXT NOT NULL,
    email                TEXT,
    email_lower          TEXT,
    email_verified       BOOLEAN NOT NULL,
    username             TEXT,
    phone_number         TEXT,
    phone_verified       BOOLEAN NOT NULL,
    name                 TEXT,
    given_name           TEXT,
    family_name          TEXT,
    nickname             TEXT,
    picture              TEXT,
    user_metadata        TEXT NOT NULL,
    app_metadata         TEXT NOT NULL,
    blocked              BOOLEAN NOT NULL,
    identities           TEXT NOT NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    last_login           INTEGER,
    last_ip              TEXT,
    logins_count         INTEGER NOT NULL,
    last_password_reset  INTEGER,
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, connection_id) REFERENCES connections(tenant_id, id)
);
CREATE UNIQUE INDEX users_connection_email ON users (tenant_id, connection_id, email_lower);
CREATE UNIQUE INDEX users_connection_username ON users (tenant_id, connection_id, username);
CREATE INDEX users_email ON users (tenant_id, email);
CREATE INDEX users_email_lower ON users (tenant_id, email_lower);
CREATE INDEX users_created ON users (tenant_id, created_at, user_id);

CREATE TABLE credentials (
    tenant_id      TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, user_id) ON DELETE CASCADE
);

CREATE TABLE logs (
    tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    log_id         TEXT NOT NULL,
    date           INTEGER NOT NULL,
    type           TEXT NOT NULL,
    description    TEXT NOT NULL,
    ip             TEXT,
    user_agent     TEXT,
    client_id      TEXT,
    client_name    TEXT,
    user_id        TEXT,
    user_name      TEXT,
    connection     TEXT,
    connection_id  TEXT,
    audience       TEXT,
    scope          TEXT,
    details        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, log_id)
);
CREATE INDEX logs_user ON logs (tenant_id, user_id, log_id);
