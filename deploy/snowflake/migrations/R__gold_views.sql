-- Repeatable: schemachange reapplies it whenever its checksum changes (after the versioned scripts).
CREATE OR REPLACE VIEW GOLD.MONTHLY_REVENUE AS
SELECT
    DATE_TRUNC('MONTH', ORDER_DATE) AS MONTH,
    SUM(ORDERS) AS ORDERS,
    SUM(REVENUE) AS REVENUE
FROM GOLD.DAILY_SALES
GROUP BY DATE_TRUNC('MONTH', ORDER_DATE);
