-- A number's own caps: calls to it in progress at once, and minutes of
-- talk per day (UTC). NULL means no cap of its own.

ALTER TABLE numbers ADD COLUMN max_concurrent_calls INTEGER;
ALTER TABLE numbers ADD COLUMN minutes_per_day INTEGER;
