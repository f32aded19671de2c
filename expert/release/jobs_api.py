"""The Jobs API's create-or-reset, found by name: the SDK path to deploy one job idempotently.

Why: `jobs.create` twice makes two jobs with one name; a deploy must find the job it owns and
replace its settings (`jobs.reset` keeps the job id, its run history and its permissions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient


@dataclass(frozen=True)
class JobDeployment:
    """What a deploy did: the job's id, whether it was created (or reset), and how many jobs have its name."""

    job_id: int
    created: bool
    jobs_with_this_name: int


def create_or_reset_job(client: WorkspaceClient, settings: dict[str, Any]) -> JobDeployment:
    """Reset the job named like `settings` if one exists, else create it."""
    from databricks.sdk.service.jobs import JobSettings

    typed = JobSettings.from_dict(settings)
    existing = [j for j in client.jobs.list(name=typed.name) if j.job_id is not None]
    if existing:
        job_id = int(existing[0].job_id or 0)
        client.jobs.reset(job_id, new_settings=typed)
        created = False
    else:
        job_id = int(
            client.jobs.create(**{name: getattr(typed, name) for name in typed.__dataclass_fields__}).job_id or 0
        )
        created = True
    return JobDeployment(job_id, created, len(list(client.jobs.list(name=typed.name))))
