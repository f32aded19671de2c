-- The served copy of the lakehouse table gold_daily_sales (contract: deploy/contracts/gold_daily_sales.odcs.yaml).
-- Runs once per database (ANALYTICS_STAGING, ANALYTICS_PROD); schemachange records it in CHANGE_HISTORY.
CREATE SCHEMA IF NOT EXISTS GOLD;

CREATE TABLE IF NOT EXISTS GOLD.DAILY_SALES (
    ORDER_DATE DATE NOT NULL,
    ORDERS NUMBER(18, 0) NOT NULL,
    UNITS NUMBER(18, 0) NOT NULL,
    REVENUE NUMBER(18, 2) NOT NULL,
    CUSTOMERS NUMBER(18, 0) NOT NULL,
    RETURNED_ORDERS NUMBER(18, 0) NOT NULL
);
