# The demo: a release of the demo agent over a local fleet of real sshd hosts (make demo).
# Variables come from the fleet.auto.tfvars.json that `devfleet up` writes.

terraform {
  required_providers {
    canary = {
      source = "canaryops/canary"
    }
  }
}

variable "hosts" {
  description = "The fleet's hosts: name, address, port and vars (agent_port)."
  type = list(object({
    name    = string
    address = string
    port    = number
    vars    = map(string)
  }))
}

variable "ssh_user" {
  type = string
}

variable "ssh_private_key_file" {
  type = string
}

variable "known_hosts_file" {
  type = string
}

variable "signing_key_file" {
  description = "ed25519 key that signs the release index (empty: a local development key)."
  type        = string
  default     = ""
}

variable "agent_version" {
  description = "The version to roll out."
  type        = string
  default     = "1.1.0"
}

provider "canary" {
  ssh = {
    user             = var.ssh_user
    private_key      = file(var.ssh_private_key_file)
    known_hosts_file = var.known_hosts_file
  }
  ledger_dir  = ".canary"
  signing_key = var.signing_key_file == "" ? null : file(var.signing_key_file)
}

resource "canary_fleet" "agents" {
  name  = "agents"
  hosts = var.hosts
}

resource "canary_guard" "health" {
  name              = "agent-health"
  severity          = "fatal"
  interval          = "1s"
  failure_threshold = 2
  http = {
    # Dialed through each host's SSH connection: 127.0.0.1 is the host's own loopback.
    url         = "http://127.0.0.1:{{.Host.Vars.agent_port}}/healthz"
    expect_body = "\"version\":\"{{.Version}}\""
  }
}

resource "canary_release" "agent" {
  fleet           = canary_fleet.agents
  version         = var.agent_version
  deploy          = { command = "agentctl install {{.Version}}", timeout = "1m" }
  revert          = { command = "agentctl install {{.PreviousVersion}}" }
  version_command = "agentctl version"
  guards          = [canary_guard.health]
  stages = [
    { name = "canary", hosts = "1", observe = "3s" },
    { name = "wave", hosts = "40%", observe = "2s" },
    { name = "fleet", hosts = "100%", observe = "1s" },
  ]
  on_failure = "rollback"
  actor      = "demo"
  reason     = "make demo"
  ticket     = "DEMO-1"
}

output "rollout_plan" {
  value = canary_release.agent.rollout_plan
}

output "hosts" {
  value = canary_release.agent.hosts
}
