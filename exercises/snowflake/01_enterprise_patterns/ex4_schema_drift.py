"""Exercise snowflake/01.4 · Schema drift in VARIANT: which keys each file added or lost, with FLATTEN.

snowflake/01 keeps raw clickstream JSON in a VARIANT column, exactly as it came, and notices when
its shape changes: a producer adds a field (`device`), renames one, stops sending one. Nothing
fails when that happens, which is why it must be looked for. FLATTEN turns every object into its
keys, so the schema each file carries is a query away. Write the drift report.

Your task: `key_drift_sql(events)` returns a query over the relation `events` (FILE_NAME, V: one
JSON object per row, as TRY_PARSE_JSON made it) with the columns FILE_NAME, KEY_NAME and CHANGE,
one row per drift, where the baseline is the first file (the lowest FILE_NAME) and
- CHANGE = 'added': KEY_NAME is a top-level key of at least one object of the file and of no
  object of the baseline file;
- CHANGE = 'missing': KEY_NAME is a top-level key of the baseline file and of no object of the file;
- a key counts as present when it is there, whatever its value (a JSON null included), and in how
  many of the file's objects does not matter; keys nested inside a value are not top-level keys;
- the baseline file, and a file with the baseline's keys, give no row.
The check writes files with drift you have not seen: new keys in some objects only, a key renamed,
a key that is always null, nested objects, and a file without drift.

Check it: expert check snowflake/01.4
"""


def key_drift_sql(events: str) -> str:
    """The top-level keys each file added or lost against the first file."""
    # TODO: this looks for the one drift the lesson showed (a `device` key), so any other new key, and
    # every key that disappears, goes unnoticed. FLATTEN each object into its keys, take each file's
    # set of keys, and compare it with the first file's, both ways.
    return f"""
SELECT DISTINCT FILE_NAME, 'device' AS KEY_NAME, 'added' AS CHANGE
FROM {events}
WHERE V:device IS NOT NULL
"""
