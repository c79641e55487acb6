-- Why the node ended a call, where a disposition and ended_by do not say
-- it all: `node_lost` when the node carrying the call died and another
-- node of the cluster wrote its record. NULL otherwise.

ALTER TABLE cdrs ADD COLUMN end_reason TEXT;
