"""Snowflake's side of disaster recovery: a failover group to a second account, shown for an administrator.

Why recommended, never applied: replication needs a second account in the organization (Business
Critical edition for failover) and moves a production database; a script must not start it.
"""

from __future__ import annotations

from expert.runtime import snowflake_ddl as ddl
from expert.runtime.snowflake import SnowflakeSession


def recommend_failover_group(session: SnowflakeSession) -> None:
    """Snowflake's side of DR: a failover group to a second account, refreshed, and the failover itself."""
    why = "needs a second Snowflake account in your organization (Business Critical edition for failover); never automatic"
    group = ddl.FailoverGroup(
        name="LAKEHOUSE_DR",
        object_types=(ddl.ReplicatedObject.DATABASES, ddl.ReplicatedObject.ROLES),
        allowed_databases=(session.database,),
        allowed_accounts=("MYORG.LAKEHOUSE_DR",),
        replication_schedule="10 MINUTE",
    )
    session.recommend(group, "replicate the serving database and its roles every 10 minutes (RPO ≈ 10 min)", why)
    replica = ddl.FailoverGroupReplica(name="LAKEHOUSE_DR", primary="MYORG.LAKEHOUSE_PRIMARY.LAKEHOUSE_DR")
    session.recommend(replica, "create the secondary copy in the DR account", why)
    refresh = ddl.AlterFailoverGroup(name="LAKEHOUSE_DR", action=ddl.FailoverGroupAction.REFRESH)
    session.recommend(refresh, "pull the latest snapshot into the DR account now", why)
    failover = ddl.AlterFailoverGroup(name="LAKEHOUSE_DR", action=ddl.FailoverGroupAction.PRIMARY)
    session.recommend(failover, "fail over: promote the DR account's copy to primary", why)
