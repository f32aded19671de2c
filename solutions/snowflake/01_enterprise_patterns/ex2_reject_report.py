"""Exercise snowflake/01.2 · Every line accounted for: typed rows, or rejects with a reason.

snowflake/01 lands each order file line by line into one VARCHAR column (nothing can fail while
landing), then judges every line in SQL: a line that holds a well-formed order becomes a typed
row, any other line is kept in the reject report with the reason it was refused. That is how a
loader keeps the good rows of a file without letting a bad line vanish (what ON_ERROR = CONTINUE
does on a typed table, but with every rejected line kept). Write the query that judges the lines.

Your task: return a SELECT over the relation `lines` (columns FILE_NAME, LINE; LINE is one CSV
line of the order feed, no header) with the columns FILE_NAME, LINE, REJECT_REASON, then the nine
ORDER_FIELDS typed as ORDER_COLUMNS says, so that
- every line comes out exactly once: REJECT_REASON NULL for a typed row, one of REASONS otherwise;
- a typed row has every field (no NULL: a line missing anything is a reject, never a half row);
- the reason is the first that applies, in the order of REASONS: not exactly nine fields; an
  empty ORDER_ID; a number field (the first six) that does not parse; a timestamp (ORDER_TS,
  UPDATED_AT) that is not ISO-8601 UTC as the feed writes it (ISO_TS; another layout or no zone is
  rejected, never guessed);
- the typed rows are exactly the orders the feed delivered, value for value.

The check judges feed files with truncated lines, missing keys, unparseable numbers and
timestamps in other layouts, and compares typed rows and rejects (by reason) with what it wrote.
Locally TRY_TO_TIMESTAMP_NTZ raises on text it cannot read: test the text against ISO_TS with
REGEXP_LIKE before converting it.

Check it: expert check snowflake/01.2
"""

ORDER_COLUMNS = {
    "ORDER_ID": "NUMBER", "CUSTOMER_ID": "NUMBER", "PRODUCT_ID": "NUMBER", "QUANTITY": "NUMBER",
    "UNIT_PRICE": "NUMBER(12,2)", "AMOUNT": "NUMBER(12,2)", "STATUS": "VARCHAR",
    "ORDER_TS": "TIMESTAMP_NTZ", "UPDATED_AT": "TIMESTAMP_NTZ",
}  # fmt: skip
ORDER_FIELDS = tuple(ORDER_COLUMNS)
ISO_TS = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z$"
REASONS = ("wrong number of fields", "ORDER_ID is missing", "a number does not parse", "a timestamp does not parse")


def order_lines_sql(lines: str) -> str:
    """Judge every landed order line: its typed fields, or why it is rejected."""
    fields = ",\n    ".join(f"SPLIT_PART(LINE, ',', {i}) AS F{i}" for i in range(1, len(ORDER_FIELDS) + 1))
    numbers = " OR ".join(f"TRY_TO_NUMBER(F{i}, 12, 2) IS NULL" for i in (1, 2, 3, 4, 5, 6))
    stamps = " OR ".join(f"NOT REGEXP_LIKE(F{i}, '{ISO_TS}')" for i in (8, 9))
    return f"""WITH f AS (
  SELECT FILE_NAME, LINE, ARRAY_SIZE(SPLIT(LINE, ',')) AS N_FIELDS,
    {fields}
  FROM {lines}
)
SELECT FILE_NAME, LINE,
  CASE
    WHEN N_FIELDS <> {len(ORDER_FIELDS)} THEN '{REASONS[0]}'
    WHEN F1 = '' THEN '{REASONS[1]}'
    WHEN {numbers} THEN '{REASONS[2]}'
    WHEN {stamps} THEN '{REASONS[3]}'
  END AS REJECT_REASON,
  TRY_TO_NUMBER(F1) AS ORDER_ID, TRY_TO_NUMBER(F2) AS CUSTOMER_ID, TRY_TO_NUMBER(F3) AS PRODUCT_ID,
  TRY_TO_NUMBER(F4) AS QUANTITY, TRY_TO_NUMBER(F5, 12, 2) AS UNIT_PRICE, TRY_TO_NUMBER(F6, 12, 2) AS AMOUNT,
  F7 AS STATUS,
  IFF(REGEXP_LIKE(F8, '{ISO_TS}'), TO_TIMESTAMP_NTZ(F8), NULL) AS ORDER_TS,
  IFF(REGEXP_LIKE(F9, '{ISO_TS}'), TO_TIMESTAMP_NTZ(F9), NULL) AS UPDATED_AT
FROM f"""
