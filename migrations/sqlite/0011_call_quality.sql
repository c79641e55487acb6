-- Each leg's estimated MOS (ITU-T G.107 E-model) over the call's quality
-- windows: the worst window and the average, in hundredths (412 is 4.12).
-- NULL when no window measured the leg (a call never answered).

ALTER TABLE cdrs ADD COLUMN browser_mos_worst_x100 INTEGER;
ALTER TABLE cdrs ADD COLUMN browser_mos_average_x100 INTEGER;
ALTER TABLE cdrs ADD COLUMN trunk_mos_worst_x100 INTEGER;
ALTER TABLE cdrs ADD COLUMN trunk_mos_average_x100 INTEGER;
