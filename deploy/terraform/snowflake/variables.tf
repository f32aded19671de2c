variable "organization_name" {
  description = "Snowflake organization name (the first half of orgname-accountname)."
  type        = string
}

variable "account_name" {
  description = "Snowflake account name (the second half of orgname-accountname)."
  type        = string
}

variable "terraform_user" {
  description = "Service user Terraform authenticates as (key-pair authentication)."
  type        = string
}

variable "private_key" {
  description = "PEM private key of the Terraform service user: pass as TF_VAR_private_key from a CI secret."
  type        = string
  sensitive   = true
}

variable "warehouse_size" {
  description = "Size of the transformation warehouse (credits per hour double with each size)."
  type        = string
  default     = "XSMALL"
}
