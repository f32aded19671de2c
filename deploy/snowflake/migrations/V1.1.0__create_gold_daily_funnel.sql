-- The served copy of gold_daily_funnel (contract: deploy/contracts/gold_daily_funnel.odcs.yaml).
CREATE TABLE IF NOT EXISTS GOLD.DAILY_FUNNEL (
    EVENT_DATE DATE NOT NULL,
    CHANNEL VARCHAR NOT NULL,
    VIEWS NUMBER(18, 0) NOT NULL,
    CARTS NUMBER(18, 0) NOT NULL,
    PURCHASES NUMBER(18, 0) NOT NULL,
    SESSIONS NUMBER(18, 0) NOT NULL
);
