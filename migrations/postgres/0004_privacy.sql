-- Privacy requests: every call gets a short reference the visitor is shown
-- when it ends, and a customer can find the call by it to export or erase
-- what is held about it. An erased call keeps only what billing needs.

ALTER TABLE cdrs ADD COLUMN privacy_ref TEXT;
ALTER TABLE cdrs ADD COLUMN erased_at BIGINT;

CREATE UNIQUE INDEX cdrs_privacy_ref ON cdrs (privacy_ref);
