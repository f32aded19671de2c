# The Snowflake side of the platform: one database per environment, the transformation
# warehouse, and the roles that deploy (schemachange) and read (BI) the gold tables.
# Table DDL is NOT here: it is versioned SQL in deploy/snowflake/migrations (schemachange), so
# schema changes are reviewed as migrations and applied in order, once, per environment.
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    snowflake = {
      # The provider started as Snowflake-Labs/snowflake; snowflakedb is its current namespace.
      source  = "snowflakedb/snowflake"
      version = "~> 2.12"
    }
  }

  backend "s3" {}
}

# Objects are owned by SYSADMIN; roles and grants by SECURITYADMIN (least privilege for each).
provider "snowflake" {
  organization_name = var.organization_name
  account_name      = var.account_name
  user              = var.terraform_user
  role              = "SYSADMIN"
  authenticator     = "SNOWFLAKE_JWT"
  private_key       = var.private_key
}

provider "snowflake" {
  alias             = "security"
  organization_name = var.organization_name
  account_name      = var.account_name
  user              = var.terraform_user
  role              = "SECURITYADMIN"
  authenticator     = "SNOWFLAKE_JWT"
  private_key       = var.private_key
}
