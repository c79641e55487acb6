-- Recordings, the consent receipts they were made under, and the audit log.
--
-- The wrapped data key lives here, never beside the blob: deleting it
-- (wrapped_key set to NULL) makes every copy of the blob unreadable.

CREATE TABLE recordings (
    id              TEXT    PRIMARY KEY,
    call_id         TEXT    NOT NULL,
    tenant_id       TEXT    NOT NULL REFERENCES tenants (id),
    number_id       TEXT    NOT NULL,
    -- The KEK that wraps the data key, and the wrapped key (nonce, key, tag).
    key_id          TEXT    NOT NULL,
    wrapped_key     BLOB,
    -- Where the encrypted blob is, relative to the recording store.
    object_path     TEXT    NOT NULL,
    -- 'recording' while written, then 'stored'; 'deleted' once erased.
    state           TEXT    NOT NULL DEFAULT 'recording'
                    CHECK (state IN ('recording', 'stored', 'deleted')),
    -- 0 when frames were dropped or the node stopped mid-recording.
    complete        INTEGER NOT NULL DEFAULT 1 CHECK (complete IN (0, 1)),
    frames_dropped  BIGINT  NOT NULL DEFAULT 0,
    -- Audio length in milliseconds and encrypted size in bytes.
    duration_ms     BIGINT  NOT NULL DEFAULT 0,
    bytes           BIGINT  NOT NULL DEFAULT 0,
    -- SHA-256 of the consent receipt, also bound into the blob's header.
    receipt_hash    TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    ended_at        BIGINT,
    -- Past this the retention sweeper deletes the recording.
    expires_at      BIGINT  NOT NULL,
    deleted_at      BIGINT
);

CREATE INDEX recordings_call ON recordings (call_id);
CREATE INDEX recordings_expiry ON recordings (state, expires_at);

-- One row per grant of consent, signed by the node (HMAC-SHA256) so an
-- auditor holding the node's receipt key can check it.
CREATE TABLE consent_receipts (
    hash            TEXT    PRIMARY KEY,
    call_id         TEXT    NOT NULL,
    number_id       TEXT    NOT NULL,
    policy          TEXT    NOT NULL,
    -- SHA-256 of the exact notice text the widget was given to show.
    notice_hash     TEXT    NOT NULL,
    method          TEXT    NOT NULL CHECK (method IN ('api', 'button', 'notice')),
    granted_at      BIGINT  NOT NULL,
    signature       TEXT    NOT NULL
);

CREATE INDEX consent_receipts_call ON consent_receipts (call_id);

-- Deletions and accesses: what happened to which recording, when and why.
CREATE TABLE audit_log (
    id              TEXT    PRIMARY KEY,
    at              BIGINT  NOT NULL,
    recording_id    TEXT    NOT NULL,
    action          TEXT    NOT NULL CHECK (action IN ('deleted', 'accessed')),
    -- deleted: 'retention', 'consent_revoked', 'api'; accessed: 'cli', 'api'.
    reason          TEXT    NOT NULL
);

CREATE INDEX audit_log_recording ON audit_log (recording_id);
