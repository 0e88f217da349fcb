-- Mail: relay leases on the outbox, tenant email templates and the tenant's email provider.

-- Which relay holds a row's lease: completion and failure are conditional on it, so a relay whose lease
-- ran out cannot overwrite the outcome of the relay that took the row over.
ALTER TABLE outbox ADD COLUMN lease_owner TEXT;
CREATE INDEX outbox_lease ON outbox (lease_owner);

CREATE TABLE email_templates (
    tenant_id                  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name                       TEXT NOT NULL,
    body                       TEXT NOT NULL,
    sender                     TEXT NOT NULL,
    subject                    TEXT NOT NULL,
    syntax                     TEXT NOT NULL,
    result_url                 TEXT,
    url_lifetime_secs          BIGINT,
    include_email_in_redirect  BOOLEAN NOT NULL,
    enabled                    BOOLEAN NOT NULL,
    updated_at                 BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- One provider per tenant. `credentials` is sealed with the server master key (AES-256-GCM, bound to
-- the tenant); it is never returned by the API.
CREATE TABLE email_providers (
    tenant_id             TEXT NOT NULL PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    name                  TEXT NOT NULL,
    enabled               BOOLEAN NOT NULL,
    default_from_address  TEXT,
    credentials           TEXT NOT NULL,
    settings              JSONB NOT NULL,
    updated_at            BIGINT NOT NULL
);
