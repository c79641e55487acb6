-- Webhooks: one endpoint per tenant and a queue of deliveries to it.
--
-- The signing secret must be read back to sign each delivery, so it is
-- kept as issued (like a trunk password, unlike an API key); the admin API
-- shows it only once, when it is made. A delivery stays in the queue until
-- it is delivered or given up, so a node that stops loses none.

CREATE TABLE webhook_endpoints (
    tenant_id  TEXT   PRIMARY KEY REFERENCES tenants (id),
    url        TEXT   NOT NULL,
    secret     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              TEXT    PRIMARY KEY,
    tenant_id       TEXT    NOT NULL REFERENCES tenants (id),
    -- 'call.ended' or 'recording.ready'.
    event           TEXT    NOT NULL,
    -- The JSON body, exactly as signed and sent.
    body            TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      BIGINT  NOT NULL,
    next_attempt_at BIGINT  NOT NULL,
    delivered_at    BIGINT,
    failed_at       BIGINT,
    -- Why the last attempt failed: a status code or a transport error,
    -- never the url's secret parts or the signing secret.
    last_error      TEXT
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
