-- Tenants, their numbers and widgets, and one call detail record per call.
--
-- Portable SQL only (SQLite now, PostgreSQL later): TEXT, INTEGER and BIGINT
-- columns, times as BIGINT unix milliseconds (INTEGER is 32-bit in
-- PostgreSQL), booleans as INTEGER 0/1, no SQLite-only syntax.

CREATE TABLE tenants (
    id         TEXT   PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE numbers (
    id             TEXT    PRIMARY KEY,
    tenant_id      TEXT    NOT NULL REFERENCES tenants (id),
    e164           TEXT    NOT NULL,
    -- A route name from [[sip.routes]], not a trunk address.
    trunk          TEXT    NOT NULL,
    recording      TEXT    NOT NULL DEFAULT 'off'
                   CHECK (recording IN ('off', 'opt_in', 'notice')),
    on_revoke      TEXT    NOT NULL DEFAULT 'discard',
    retention_days INTEGER NOT NULL DEFAULT 30,
    notice_text    TEXT,
    created_at     BIGINT  NOT NULL,
    -- Lets widgets reference (tenant, number) so a widget can only ever
    -- point at a number of its own tenant.
    UNIQUE (tenant_id, id)
);

CREATE TABLE widgets (
    id              TEXT   PRIMARY KEY,
    tenant_id       TEXT   NOT NULL REFERENCES tenants (id),
    number_id       TEXT   NOT NULL REFERENCES numbers (id),
    -- JSON array of origins; the token "self" means the node's own public origin.
    allowed_origins TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    FOREIGN KEY (tenant_id, number_id) REFERENCES numbers (tenant_id, id)
);

-- No foreign keys to numbers or widgets: a CDR outlives the number or widget
-- it was placed through (billing keeps it after an admin deletes either).
-- Nothing about the visitor beyond the truncated network: no user agent, no
-- full IP, no SDP.
CREATE TABLE cdrs (
    call_id                  TEXT    PRIMARY KEY,
    tenant_id                TEXT    NOT NULL REFERENCES tenants (id),
    number_id                TEXT    NOT NULL,
    widget_id                TEXT    NOT NULL,
    -- The trunk actually used; NULL when no trunk was reached.
    trunk                    TEXT,
    node_id                  TEXT    NOT NULL,
    created_at               BIGINT  NOT NULL,
    answered_at              BIGINT,
    ended_at                 BIGINT  NOT NULL,
    -- answered_at to ended_at; 0 when never answered.
    duration_ms              BIGINT  NOT NULL DEFAULT 0,
    disposition              TEXT    NOT NULL,
    sip_code                 INTEGER,
    ended_by                 TEXT    NOT NULL
                             CHECK (ended_by IN ('visitor', 'callee', 'node')),
    browser_codec            TEXT,
    trunk_codec              TEXT,
    browser_packets_sent     BIGINT  NOT NULL DEFAULT 0,
    browser_packets_received BIGINT  NOT NULL DEFAULT 0,
    browser_packets_lost     BIGINT  NOT NULL DEFAULT 0,
    -- Interarrival jitter in integer microseconds (exact, no float columns).
    browser_jitter_us        BIGINT  NOT NULL DEFAULT 0,
    trunk_packets_sent       BIGINT  NOT NULL DEFAULT 0,
    trunk_packets_received   BIGINT  NOT NULL DEFAULT 0,
    trunk_packets_lost       BIGINT  NOT NULL DEFAULT 0,
    trunk_jitter_us          BIGINT  NOT NULL DEFAULT 0,
    -- The visitor's address cut to its /24 or /48, e.g. '203.0.113.0/24'.
    visitor_network          TEXT,
    recorded                 INTEGER NOT NULL DEFAULT 0 CHECK (recorded IN (0, 1))
);

CREATE INDEX cdrs_tenant_created ON cdrs (tenant_id, created_at);
