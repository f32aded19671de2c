"""Exercise integration/03.3 · Champion and challenger on the registry: promote by alias, roll back in one move.

In integration/03 nothing serves "the latest model": endpoints and batch jobs load
`models:/<name>@champion`, and the version under test is `@challenger`. Promotion and rollback
are therefore alias moves on the MLflow model registry, never a redeploy. The gate (exercise 03.2)
decides; the registry must follow it exactly, and remember enough to undo it.

Your task, with an MlflowClient `client` and the registered model `model_name`:
- `follow_gate(client, model_name, promote)`: when `promote` is False, change nothing (the
  experiment goes on). When True, point CHAMPION at the challenger's version, record on that
  version the tag REPLACED_TAG = the version it replaced, and delete the CHALLENGER alias (it is
  no longer a challenger).
- `roll_back(client, model_name)`: point CHAMPION back at the version recorded in the current
  champion's REPLACED_TAG tag; when the champion has no such tag, change nothing. Rolling back
  twice goes two promotions back. Other aliases stay where they are.
Versions are never created or deleted here. Useful calls: get_model_version_by_alias,
set_registered_model_alias, delete_registered_model_alias, set_model_version_tag,
get_model_version (its `.tags`).

Check it: expert check integration/03.3
"""

from mlflow import MlflowClient

CHAMPION = "champion"
CHALLENGER = "challenger"
REPLACED_TAG = "replaced_version"


def follow_gate(client: MlflowClient, model_name: str, promote: bool) -> None:
    """Apply the A/B gate's decision to the registry's aliases."""
    # TODO: a promotion must also remember the version it replaced (tag REPLACED_TAG on the new
    # champion) and retire the challenger alias; otherwise there is no way back.
    if promote:
        challenger = client.get_model_version_by_alias(model_name, CHALLENGER).version
        client.set_registered_model_alias(model_name, CHAMPION, challenger)


def roll_back(client: MlflowClient, model_name: str) -> None:
    """Undo the last promotion: the champion goes back to the version it replaced."""
    # TODO: "the previous version number" is not the previous champion: versions that never won are
    # in between. Read the REPLACED_TAG tag of the current champion instead.
    champion = int(client.get_model_version_by_alias(model_name, CHAMPION).version)
    if champion > 1:
        client.set_registered_model_alias(model_name, CHAMPION, str(champion - 1))
