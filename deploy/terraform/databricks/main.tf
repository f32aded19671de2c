# One policy for every job cluster of the pipeline: the job's cluster spec is checked against
# this same JSON file locally (databricks/03), so a job that breaks the policy fails in review,
# not at 3 a.m. when the scheduler tries to start it.
resource "databricks_cluster_policy" "pipeline_jobs" {
  name        = "lakehouse-pipeline-jobs"
  description = "Job clusters of the lakehouse medallion pipeline: small, auto-terminating, tagged."
  definition  = file("${path.module}/cluster_policy.json")
}

resource "databricks_permissions" "pipeline_jobs_policy" {
  cluster_policy_id = databricks_cluster_policy.pipeline_jobs.id

  access_control {
    service_principal_name = var.deployer_application_id
    permission_level       = "CAN_USE"
  }

  access_control {
    group_name       = var.engineers_group
    permission_level = "CAN_USE"
  }
}

resource "databricks_schema" "environment" {
  for_each     = toset(var.environments)
  catalog_name = var.catalog
  name         = each.value
  comment      = "Medallion tables of the ${each.value} environment (managed by Terraform)."
}

resource "databricks_grants" "environment" {
  for_each = databricks_schema.environment
  schema   = "${var.catalog}.${each.value.name}"

  grant {
    principal  = var.deployer_application_id
    privileges = ["USE_SCHEMA", "CREATE_TABLE", "SELECT", "MODIFY"]
  }

  grant {
    principal  = var.engineers_group
    privileges = each.value.name == "prod" ? ["USE_SCHEMA", "SELECT"] : ["USE_SCHEMA", "CREATE_TABLE", "SELECT", "MODIFY"]
  }
}
