# The workspace side of the platform: the cluster policy every pipeline job must run under,
# who may use it, and the Unity Catalog schemas the bundle deploys into.
# Applied by the deploy workflow's production job (terraform init/apply); locally it is only
# formatted and parsed, because `terraform init` must download the provider from the registry.
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    databricks = {
      source  = "databricks/databricks"
      version = ">= 1.50.0, < 2.0.0"
    }
  }

  # State lives in the team's bucket; bucket, key and region come from `-backend-config` in CI.
  backend "s3" {}
}

# Authentication comes from the environment (DATABRICKS_HOST, DATABRICKS_CLIENT_ID,
# DATABRICKS_CLIENT_SECRET): never from this file.
provider "databricks" {}
