-- Why a trunk refused a call, in its own words: the reason phrase of its
-- final response (stripped of personal data) and the Q.850 cause of its
-- Reason header. NULL when the trunk gave none.

ALTER TABLE cdrs ADD COLUMN sip_reason TEXT;
ALTER TABLE cdrs ADD COLUMN q850_cause INTEGER;
