variable "hosts" {
  type = list(object({ name = string, address = string, port = number, vars = map(string) }))
}
variable "ssh_user" { type = string }
variable "ssh_private_key_file" { type = string }
variable "known_hosts_file" { type = string }
variable "agent_version" { type = string }
variable "update_timeout" { type = string }

provider "canary" {
  ssh = {
    user             = var.ssh_user
    private_key      = file(var.ssh_private_key_file)
    known_hosts_file = var.known_hosts_file
  }
}

resource "canary_fleet" "agents" {
  name  = "agents"
  hosts = var.hosts
}

resource "canary_guard" "health" {
  name              = "agent-health"
  interval          = "300ms"
  failure_threshold = 2
  http = {
    url         = "http://127.0.0.1:{{.Host.Vars.agent_port}}/healthz"
    expect_body = "\"version\":\"{{.Version}}\""
  }
}

resource "canary_release" "agent" {
  fleet           = canary_fleet.agents
  version         = var.agent_version
  deploy          = { command = "agentctl install {{.Version}}", timeout = "30s" }
  revert          = { command = "agentctl install {{.PreviousVersion}}" }
  version_command = "agentctl version"
  guards          = [canary_guard.health]
  stages = [
    { name = "canary", hosts = "1", observe = "6s" },
    { name = "wave", hosts = "50%", observe = "500ms" },
    { name = "fleet", hosts = "100%" },
  ]

  timeouts {
    update = var.update_timeout
  }
}
