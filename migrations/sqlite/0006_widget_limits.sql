-- A widget's own limits, tighter than the node's: new calls per minute and
-- calls in progress through it. NULL means the node's limit applies.

ALTER TABLE widgets ADD COLUMN calls_per_minute INTEGER;
ALTER TABLE widgets ADD COLUMN max_concurrent_calls INTEGER;
