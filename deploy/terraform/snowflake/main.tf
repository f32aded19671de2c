locals {
  # Environment -> database: schemachange deploys the migrations into exactly these databases.
  databases = {
    staging = "ANALYTICS_STAGING"
    prod    = "ANALYTICS_PROD"
  }
}

resource "snowflake_database" "environment" {
  for_each                    = local.databases
  name                        = each.value
  comment                     = "Gold tables served from the lakehouse (${each.key})."
  data_retention_time_in_days = each.key == "prod" ? 7 : 1
}

resource "snowflake_warehouse" "transform" {
  name                = "TRANSFORM_WH"
  warehouse_size      = var.warehouse_size
  auto_suspend        = 60
  auto_resume         = true
  initially_suspended = true
  comment             = "Loads and transforms the gold tables; suspends after 60 s idle."
}

resource "snowflake_account_role" "deployer" {
  provider = snowflake.security
  name     = "DEPLOYER"
  comment  = "Runs schemachange migrations from CI."
}

resource "snowflake_account_role" "reporter" {
  provider = snowflake.security
  name     = "REPORTER"
  comment  = "Reads the gold tables (BI tools)."
}

resource "snowflake_grant_account_role" "deployer_to_sysadmin" {
  provider         = snowflake.security
  role_name        = snowflake_account_role.deployer.name
  parent_role_name = "SYSADMIN"
}

resource "snowflake_grant_privileges_to_account_role" "deployer_databases" {
  provider          = snowflake.security
  for_each          = snowflake_database.environment
  account_role_name = snowflake_account_role.deployer.name
  privileges        = ["USAGE", "CREATE SCHEMA"]
  on_account_object {
    object_type = "DATABASE"
    object_name = each.value.name
  }
}

resource "snowflake_grant_privileges_to_account_role" "deployer_warehouse" {
  provider          = snowflake.security
  account_role_name = snowflake_account_role.deployer.name
  privileges        = ["USAGE"]
  on_account_object {
    object_type = "WAREHOUSE"
    object_name = snowflake_warehouse.transform.name
  }
}

resource "snowflake_grant_privileges_to_account_role" "reporter_prod" {
  provider          = snowflake.security
  account_role_name = snowflake_account_role.reporter.name
  privileges        = ["USAGE"]
  on_account_object {
    object_type = "DATABASE"
    object_name = snowflake_database.environment["prod"].name
  }
}

resource "snowflake_grant_privileges_to_account_role" "reporter_future_tables" {
  provider          = snowflake.security
  account_role_name = snowflake_account_role.reporter.name
  privileges        = ["SELECT"]
  on_schema_object {
    future {
      object_type_plural = "TABLES"
      in_database        = snowflake_database.environment["prod"].name
    }
  }
}
