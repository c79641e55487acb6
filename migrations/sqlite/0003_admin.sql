-- API keys and one audit log for everything an admin or the node does to a
-- tenant's data.
--
-- An API key is shown once and stored only as a keyed hash: HMAC-SHA256
-- under a key-encryption key (named by hash_key_id, so rotation keeps old
-- keys valid). The key's id is the visible part of the key itself
-- ("cg_<id>_<secret>"), so a lookup needs no scan and no per-request KDF.

CREATE TABLE api_keys (
    id          TEXT   PRIMARY KEY,
    -- NULL for operator keys, which belong to no tenant.
    tenant_id   TEXT   REFERENCES tenants (id),
    role        TEXT   NOT NULL CHECK (role IN ('admin', 'read', 'operator')),
    hash_key_id TEXT   NOT NULL,
    hash        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    CHECK ((role = 'operator') = (tenant_id IS NULL))
);

-- Who did what to which object of which tenant, and when. Recording
-- accesses and deletions included; never a key, a number or an address.
CREATE TABLE audit_events (
    id          TEXT   PRIMARY KEY,
    tenant_id   TEXT   NOT NULL,
    at          BIGINT NOT NULL,
    -- 'key:<api key id>', 'cli' or 'node'.
    actor       TEXT   NOT NULL,
    -- recordings: 'deleted', 'accessed'; others: 'created', 'updated',
    -- 'deleted', 'revoked', 'exported', 'erased'.
    action      TEXT   NOT NULL,
    -- 'recording', 'number', 'widget', 'api_key', 'call'.
    target_kind TEXT   NOT NULL,
    target_id   TEXT   NOT NULL,
    -- recordings deleted: 'retention', 'consent_revoked', 'api';
    -- accessed: 'cli', 'api'; otherwise what changed (field names only).
    reason      TEXT   NOT NULL DEFAULT ''
);

CREATE INDEX audit_events_tenant_at ON audit_events (tenant_id, at);
CREATE INDEX audit_events_target ON audit_events (target_kind, target_id);

INSERT INTO audit_events (id, tenant_id, at, actor, action, target_kind, target_id, reason)
    SELECT a.id, r.tenant_id, a.at,
           CASE WHEN a.reason = 'cli' THEN 'cli' ELSE 'node' END,
           a.action, 'recording', a.recording_id, a.reason
    FROM audit_log a JOIN recordings r ON r.id = a.recording_id;

DROP TABLE audit_log;
