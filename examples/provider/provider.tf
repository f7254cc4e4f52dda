provider "canary" {
  ssh = {
    user             = "deploy"
    private_key      = file("~/.ssh/id_ed25519") # or use_agent = true
    known_hosts_file = "~/.ssh/known_hosts"      # host keys are checked strictly
    bastion          = { host = "bastion.example.com" }
  }

  ledger_dir = ".canary"
  sentry = {
    api_url     = "https://sentry.io"
    auth_token  = var.sentry_token
    org         = "acme"
    project     = "agents"
    environment = "production"
    dsn         = var.sentry_dsn
  }
}

variable "sentry_token" {
  type      = string
  sensitive = true
}

variable "sentry_dsn" {
  type      = string
  sensitive = true
}
