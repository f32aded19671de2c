-- Every served row says which lakehouse release and Delta table version it was loaded from,
-- so a rollback in the lake can be matched by a reload here.
ALTER TABLE GOLD.DAILY_SALES ADD COLUMN RELEASE VARCHAR;
ALTER TABLE GOLD.DAILY_SALES ADD COLUMN DELTA_VERSION NUMBER(18, 0);
