variable "catalog" {
  description = "Unity Catalog catalog that holds one schema per environment."
  type        = string
  default     = "lakehouse"
}

variable "environments" {
  description = "Deployment environments; each gets its own schema (the bundle targets staging and prod)."
  type        = list(string)
  default     = ["staging", "prod"]
}

variable "deployer_application_id" {
  description = "Application (client) id of the CI service principal that deploys and runs the production job."
  type        = string
}

variable "engineers_group" {
  description = "Workspace group of the data engineers, who may use the policy for dev runs."
  type        = string
  default     = "data-engineers"
}
