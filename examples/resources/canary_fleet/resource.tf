# Hosts in rollout order: the first ones are the canaries.
resource "canary_fleet" "agents" {
  name = "agents"
  hosts = [
    { name = "agent-1", address = "10.0.0.11" },
    { name = "agent-2", address = "10.0.0.12" },
    { name = "agent-3", address = "10.0.0.13", port = 2222 },
    { name = "agent-4", address = "10.0.0.14", vars = { region = "eu-west" } },
  ]
}
