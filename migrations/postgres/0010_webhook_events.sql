-- The events a tenant's endpoint receives, comma-separated. Endpoints set
-- before call.ringing and call.answered existed keep what they received.

ALTER TABLE webhook_endpoints ADD COLUMN events TEXT NOT NULL DEFAULT 'call.ended,recording.ready';
