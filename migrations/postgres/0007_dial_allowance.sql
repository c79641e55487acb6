-- The toll-fraud guard: the routes and E.164 prefixes a tenant's numbers
-- may use, as the operator set them (JSON: {"routes": [...] or null,
-- "prefixes": [...] or null}). NULL means the node's default allowance.

ALTER TABLE tenants ADD COLUMN dial_allowance TEXT;
