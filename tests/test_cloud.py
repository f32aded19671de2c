"""Cloud tests: the same factories against real accounts. Skipped without credentials.

Run them with credentials in `.env` (or the environment): `.venv/bin/pytest -m cloud -v`.
They only create objects in the pattern's own database and clean up after themselves.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from expert.runtime.config import load_settings


@pytest.mark.cloud("snowflake")
def test_real_snowflake_session_loads_and_queries(tmp_path: Path) -> None:
    from expert.runtime.snowflake import snowflake_session

    settings = load_settings()
    with snowflake_session(settings.snowflake, db_path=tmp_path, database="EXPERT_CLOUD_TEST") as session:
        assert session.mode == "cloud"
        session.execute("CREATE OR REPLACE TEMPORARY TABLE CLOUD_SMOKE (ID INT, NAME VARCHAR)")
        session.write_pandas(pd.DataFrame({"ID": [1, 2], "NAME": ["a", "b"]}), "CLOUD_SMOKE", auto_create_table=False)
        assert session.scalar("SELECT COUNT(*) FROM CLOUD_SMOKE") == 2
        assert not session.ledger


@pytest.mark.cloud("databricks")
def test_real_databricks_workspace_answers() -> None:
    from expert.runtime.databricks import connect_workspace

    me = connect_workspace(load_settings().databricks).current_user.me()
    assert me.user_name
