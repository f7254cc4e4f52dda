# The release the lifecycle, halt and interrupted acceptance tests roll out over devfleet hosts.
variable "hosts" {
  type = list(object({ name = string, address = string, port = number, vars = map(string) }))
}
variable "ssh_user" { type = string }
variable "ssh_private_key_file" { type = string }
variable "known_hosts_file" { type = string }
variable "agent_version" { type = string }
variable "on_failure" {
  type    = string
  default = "rollback"
}
variable "canary_observe" {
  type    = string
  default = "1s"
}
variable "update_timeout" {
  type    = string
  default = "10m"
}

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

# Fails on a host that has a file broken-VERSION while it runs VERSION: a fault of one version on
# one host, so a rollout fails in the stage that reaches it.
resource "canary_guard" "not_broken" {
  name              = "not-broken"
  interval          = "200ms"
  failure_threshold = 1
  command = {
    command = "test ! -e ~/broken-{{.Version}} || { echo {{.Version}} is broken here; exit 1; }"
  }
}

resource "canary_release" "agent" {
  fleet           = canary_fleet.agents
  version         = var.agent_version
  deploy          = { command = "agentctl install {{.Version}}", timeout = "30s" }
  revert          = { command = "agentctl install {{.PreviousVersion}}" }
  version_command = "agentctl version"
  guards          = [canary_guard.health, canary_guard.not_broken]
  on_failure      = var.on_failure
  stages = [
    { name = "canary", hosts = "1", observe = var.canary_observe },
    { name = "wave", hosts = "50%", observe = "500ms" },
    { name = "fleet", hosts = "100%" },
  ]

  timeouts {
    update = var.update_timeout
  }
}
