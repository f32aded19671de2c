output "databases" {
  description = "Environment -> database, the -d argument of schemachange deploy."
  value       = { for env, db in snowflake_database.environment : env => db.name }
}

output "warehouse" {
  description = "Warehouse the deployer and the loads use."
  value       = snowflake_warehouse.transform.name
}
