output "cluster_policy_id" {
  description = "Pass to the bundle as --var cluster_policy_id=... (databricks bundle deploy)."
  value       = databricks_cluster_policy.pipeline_jobs.id
}

output "schemas" {
  description = "Schema per environment, catalog.schema."
  value       = { for env, schema in databricks_schema.environment : env => "${var.catalog}.${schema.name}" }
}
